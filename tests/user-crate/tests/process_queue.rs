//! A process queue running a library handler on library items, as an outside user would.

skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

use std::time::{Duration, Instant};

use skprocess::ProcessQueue;
use skprocess_user_crate::queue_work::{Greeting, greet};

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[test]
fn a_process_queue_runs_a_library_handler_in_a_worker_process() {
    let _bound = bound::within(TEST_BOUND);
    let file = std::env::temp_dir().join(format!("skprocess-user-pqueue-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let queue = ProcessQueue::new(greet);
    let greetings = ["ada", "grace"].map(|name| Greeting {
        file: file.clone(),
        name: name.to_owned(),
    });
    let (spawned_new, _) = queue.start(greetings).unwrap();
    assert!(spawned_new);
    let deadline = Instant::now() + BOUND;
    while queue.is_alive() {
        assert!(Instant::now() < deadline, "the worker did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("hello ada from "));
    assert!(lines[1].starts_with("hello grace from "));
    assert!(!lines[0].ends_with(&format!(" {}", std::process::id())));
}
