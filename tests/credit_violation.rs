//! A child that sends more messages than the credits its parent gave it breaks the protocol:
//! it is killed, and that is a crash that costs a life (fault 6).

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(300);

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// The parent's outbox room for this child: its credits.
const CREDITS: u32 = 4;

#[derive(Serialize, Deserialize, Default)]
struct Overspender {
    extra: u32,
}

#[skprocess(outbox = u32)]
impl Overspender {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        for i in 0..CREDITS + self.extra {
            ctx.__tell_without_credit(i)?;
        }
        if self.extra > 0 {
            // Stay until the parent ends this child; a parent that let it through would see
            // it finish after this.
            std::thread::sleep(BOUND * 2);
        }
        Ok(())
    }
}

fn start(extra: u32) -> Handle<Overspender> {
    let config = Overspender::default_config().outbox_capacity(CREDITS);
    Overspender { extra }.start_with(config).unwrap()
}

#[test]
fn a_child_that_overspends_its_credits_is_killed_as_a_crash() {
    let _bound = bound::within(TEST_BOUND);
    let handle = start(3);
    // Nobody listens, so no credit comes back: the fifth message is one too many.
    assert!(
        handle.wait_timeout(BOUND),
        "the overspending child was not ended"
    );
    match handle.result_timeout(BOUND).unwrap_err() {
        Error::Crashed { status, .. } => {
            assert!(status.contains("credits"), "{status}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[test]
fn a_child_within_its_credits_finishes() {
    let _bound = bound::within(TEST_BOUND);
    let handle = start(0);
    let told: Vec<u32> = (0..CREDITS)
        .map(|_| handle.listen_timeout(BOUND).unwrap().unwrap())
        .collect();
    assert_eq!(told, [0, 1, 2, 3]);
    handle.result_timeout(BOUND).unwrap();
}
