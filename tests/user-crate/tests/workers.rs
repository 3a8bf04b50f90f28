skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// `run` and `WorkerResource` with functions of the library, as an outside user would.

use std::time::Duration;

use skprocess::{WorkerResource, run};
use skprocess_user_crate::pool_work::{Line, measure, power};

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[test]
fn run_and_a_worker_resource_call_library_functions() {
    let _bound = bound::within(TEST_BOUND);
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut worker = run(power as fn(u64, u32) -> u64, (2u64, 10u32)).unwrap();
        let powered = worker.join_timeout(BOUND).unwrap();
        let mut resource = WorkerResource::new(measure).unwrap();
        let line = Line {
            number: 7,
            text: "three small words".to_owned(),
        };
        let measured = resource.execute(line).unwrap();
        let status = resource.status().unwrap();
        resource.stop().unwrap();
        done.send((powered, measured.words, measured.number, status.items))
    });
    let (powered, words, number, items) = outcome.recv_timeout(BOUND).expect("a worker hung");
    assert_eq!(powered, Some(1024));
    assert_eq!((words, number, items), (3, 7, 1));
}
