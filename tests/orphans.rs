//! No orphans: when a parent dies by SIGKILL (`TerminateProcess` on Windows), its children exit
//! promptly.
#![cfg(any(target_os = "linux", windows))]

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

#[path = "support/pid.rs"]
mod pid;
use pid::running;

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Sleeper;

#[skprocess(runs = None)]
impl Sleeper {
    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child that starts a grandchild, reports its pid, and then waits forever.
#[derive(Serialize, Deserialize)]
struct Spawner;

#[skprocess(outbox = u32)]
impl Spawner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let grandchild = Sleeper.start()?;
        ctx.tell(grandchild.pid())?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn children_exit_once_their_parent_is_sigkilled() {
    let _bound = bound::within(TEST_BOUND);
    let parent = Spawner.start().unwrap();
    let grandchild = parent
        .listen_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(
        running(grandchild),
        "grandchild {grandchild} should be running"
    );
    pid::kill(parent.pid());
    // A child exits as soon as its parent's connection closes (README, "No orphans"): the
    // bound only catches one that never does.
    bound::until(
        BOUND,
        &format!("grandchild {grandchild} exits with its parent"),
        || !running(grandchild),
    );
    assert!(matches!(
        parent.result_timeout(BOUND),
        Err(Error::Crashed { .. })
    ));
}
