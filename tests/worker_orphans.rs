//! No orphans from workers: when the process that started a `run` worker or a
//! `WorkerResource` dies by SIGKILL (`TerminateProcess` on Windows) while the worker is busy in
//! a long call, the worker exits.
#![cfg(any(target_os = "linux", windows))]

use std::time::Duration;

use skprocess::prelude::*;
use skprocess::{WorkerResource, run};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

#[path = "support/pid.rs"]
mod pid;
use pid::running;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// Far longer than any bound here: a worker still in it when its owner died is an orphan.
fn sleep_an_hour(_: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(3600));
    0
}

/// Which kind of worker the owner starts.
#[derive(Serialize, Deserialize)]
enum Kind {
    Run,
    Resource,
}

/// A process that starts a worker busy in a long call, tells its pid, and waits to be killed.
#[derive(Serialize, Deserialize)]
struct Owner {
    kind: Kind,
}

#[skprocess(outbox = u32)]
impl Owner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match self.kind {
            Kind::Run => {
                let worker = run(sleep_an_hour as fn(u64) -> u64, (0u64,))?;
                ctx.tell(worker.pid().unwrap_or(0))?;
                park_forever()
            }
            Kind::Resource => {
                let mut resource = WorkerResource::new(sleep_an_hour)?;
                resource.send(0)?;
                ctx.tell(resource.pid())?;
                park_forever()
            }
        }
    }
}

fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn worker_exits_when_its_owner_is_sigkilled(kind: Kind) {
    let owner = Owner { kind }.start().unwrap();
    let worker = owner
        .listen_timeout(BOUND)
        .unwrap()
        .expect("the worker's pid");
    assert!(worker != 0 && running(worker));
    pid::kill(owner.pid());
    if !bound::eventually(BOUND, || !running(worker)) {
        pid::kill(worker);
        panic!("worker {worker} outlived its SIGKILLed owner by {BOUND:?}");
    }
}

#[test]
fn a_run_worker_exits_when_its_owner_is_sigkilled() {
    let _bound = bound::within(TEST_BOUND);
    worker_exits_when_its_owner_is_sigkilled(Kind::Run);
}

#[test]
fn a_busy_worker_resource_exits_when_its_owner_is_sigkilled() {
    let _bound = bound::within(TEST_BOUND);
    worker_exits_when_its_owner_is_sigkilled(Kind::Resource);
}
