//! No orphans: when a parent dies by SIGKILL, its children exit promptly.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use skprocess::prelude::*;

skprocess::test_support!();

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
fn children_exit_within_two_seconds_of_their_parent_being_sigkilled() {
    let parent = Spawner.start().unwrap();
    let grandchild = parent.listen(Duration::from_secs(10)).unwrap().unwrap();
    assert!(
        running(grandchild),
        "grandchild {grandchild} should be running"
    );
    let rc = unsafe { libc::kill(parent.pid() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while running(grandchild) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !running(grandchild),
        "grandchild {grandchild} outlived its parent"
    );
    assert!(matches!(
        parent.result_timeout(BOUND),
        Err(Error::Crashed { .. })
    ));
}
