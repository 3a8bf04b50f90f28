//! A stopped worker (SIGSTOP, a debugger, a frozen cgroup) holds only the chunks it was given:
//! the other workers keep receiving theirs and their results keep coming.
// Unix by nature: a stopped process is SIGSTOP's (Windows has no stopping a process).
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::sync::mpsc;
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

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// Four MiB per item: a chunk for a worker that does not read fills its socket at once.
fn length(bytes: serde_bytes::ByteBuf) -> usize {
    bytes.len()
}

/// Stops `worker` and waits until it is stopped.
fn stop(worker: u32) {
    pid::signal(worker, libc::SIGSTOP);
    bound::until(BOUND, "the worker stops on SIGSTOP", || {
        pid::stopped(worker)
    });
}

#[test]
fn a_stopped_worker_does_not_stop_the_others_results() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(2).unwrap());
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    stop(pids[0]);
    let (results, received) = mpsc::channel();
    let p = Arc::clone(&pool);
    let mapper = std::thread::spawn(move || {
        let items = (0..24).map(|_| serde_bytes::ByteBuf::from(vec![0u8; 4 << 20]));
        for outcome in p.unordered_imap(length, items) {
            if results.send(outcome).is_err() {
                return;
            }
        }
    });
    // Before chunks were written off the dispatcher thread, its blocking write to the
    // stopped worker held every other chunk back: no result came at all.
    let first = received.recv_timeout(BOUND);
    pid::signal(pids[0], libc::SIGCONT);
    assert_eq!(
        first
            .expect("no result while one worker was stopped")
            .unwrap(),
        4 << 20
    );
    let rest: Vec<_> = (1..24).map(|_| received.recv_timeout(BOUND)).collect();
    assert!(rest.iter().all(|r| matches!(r, Ok(Ok(n)) if *n == 4 << 20)));
    bound::join(mapper, BOUND, "the mapping thread");
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn a_stopped_worker_that_holds_small_items_is_timed_out_and_the_map_completes() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(2).unwrap());
    let pids = pool.worker_pids();
    stop(pids[0]);
    let (done, finished) = mpsc::channel();
    let p = Arc::clone(&pool);
    std::thread::spawn(move || {
        let _ = done.send(p.timeout(Duration::from_millis(500)).map(double, 0..20u64));
    });
    // Before, the item timeout started only at a start report a stopped worker never sends,
    // so the map waited for it for ever.
    let outcome = finished.recv_timeout(BOUND);
    // The worker may have been killed as stuck (and reaped) by now: no assertion.
    let _ = unsafe { libc::kill(pids[0] as i32, libc::SIGCONT) };
    let doubled = outcome
        .expect("the map waited for the stopped worker")
        .unwrap();
    assert_eq!(doubled, (0..20).map(double).collect::<Vec<_>>());
}
