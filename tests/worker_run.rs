//! `run` and `run_thread`: a plain function on a process or a thread, and its `Worker` handle
//! (result, panic, crash, kill, timeouts, liveness, drop).
#![cfg(any(target_os = "linux", windows))]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skprocess::{Error, Worker, run, run_thread};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;
use pid::exists;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn fail(message: String) -> u64 {
    panic!("{message}")
}

/// Creates `marker` (so the test knows the function runs), then sleeps.
fn mark_and_sleep(marker: PathBuf, millis: u64) -> u64 {
    let _ = std::fs::write(&marker, b"running");
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

fn marker(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "skprocess-worker-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Waits (bounded) until `path` exists.
#[track_caller]
fn wait_for(path: &Path) {
    bound::until(BOUND, "the worker starts", || path.exists());
    let _ = std::fs::remove_file(path);
}

/// `join()` on a thread of its own, waiting at most `BOUND` for it.
#[track_caller]
fn join_bounded<R: Send + 'static>(worker: Worker<R>) -> Result<R, Error> {
    bound::on_thread(BOUND, "join()", move || worker.join())
}

#[test]
fn a_process_worker_returns_its_functions_value() {
    let _bound = bound::within(TEST_BOUND);
    let worker = run(add as fn(u64, u64) -> u64, (2, 40)).unwrap();
    let pid = worker.pid().expect("a process worker has a pid");
    assert_ne!(pid, std::process::id());
    assert_eq!(join_bounded(worker).unwrap(), 42);
    let closure = run(|x: u64| x * 3, (5,)).unwrap();
    assert_eq!(join_bounded(closure).unwrap(), 15);
}

#[test]
fn a_panic_is_panicked_with_its_text() {
    let _bound = bound::within(TEST_BOUND);
    let worker = run(fail as fn(String) -> u64, ("no luck".to_owned(),)).unwrap();
    match join_bounded(worker) {
        Err(Error::Panicked { message, .. }) => assert_eq!(message, "no luck"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn a_worker_killed_from_outside_is_crashed_naming_the_signal() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("sigkill");
    let worker = run(
        mark_and_sleep as fn(PathBuf, u64) -> u64,
        (path.clone(), 60_000),
    )
    .unwrap();
    wait_for(&path);
    let pid = worker.pid().unwrap();
    pid::kill(pid);
    match join_bounded(worker) {
        Err(Error::Crashed { status, .. }) => assert!(status.contains(pid::KILLED), "{status}"),
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[test]
fn kill_ends_the_process_and_its_result_is_killed() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("kill");
    let worker = run(
        mark_and_sleep as fn(PathBuf, u64) -> u64,
        (path.clone(), 60_000),
    )
    .unwrap();
    wait_for(&path);
    assert!(worker.is_alive());
    worker.kill().unwrap();
    assert!(!worker.is_alive());
    assert!(
        !exists(worker.pid().unwrap()),
        "the killed worker was not reaped"
    );
    worker.kill().unwrap();
    assert!(matches!(join_bounded(worker), Err(Error::Killed)));
}

#[test]
fn join_timeout_is_none_while_running_then_the_value() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("join-timeout");
    let mut worker = run(
        mark_and_sleep as fn(PathBuf, u64) -> u64,
        (path.clone(), 400),
    )
    .unwrap();
    assert_eq!(worker.join_timeout(Duration::from_millis(5)).unwrap(), None);
    assert!(worker.is_alive());
    assert_eq!(worker.join_timeout(BOUND).unwrap(), Some(400));
    assert!(!worker.is_alive());
    assert!(matches!(
        worker.join_timeout(Duration::ZERO),
        Err(Error::AlreadyJoined)
    ));
}

#[test]
fn wait_timeout_works_from_several_threads() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("wait");
    let worker = Arc::new(
        run(
            mark_and_sleep as fn(PathBuf, u64) -> u64,
            (path.clone(), 200),
        )
        .unwrap(),
    );
    assert!(!worker.wait_timeout(Duration::from_millis(1)));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let worker = Arc::clone(&worker);
            std::thread::spawn(move || worker.wait_timeout(BOUND))
        })
        .collect();
    for waiter in waiters {
        assert!(bound::join(waiter, BOUND, "a waiting thread"));
    }
    assert!(!worker.is_alive());
}

#[test]
fn dropping_a_running_worker_kills_and_reaps_it() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("drop");
    let worker = run(
        mark_and_sleep as fn(PathBuf, u64) -> u64,
        (path.clone(), 60_000),
    )
    .unwrap();
    wait_for(&path);
    let pid = worker.pid().unwrap();
    assert!(exists(pid));
    drop(worker);
    bound::until(BOUND, "the dropped worker's process is reaped", || {
        !exists(pid)
    });
}

#[test]
fn a_thread_worker_returns_its_value_and_its_panic() {
    let _bound = bound::within(TEST_BOUND);
    let worker = run_thread(add as fn(u64, u64) -> u64, (1, 2)).unwrap();
    assert_eq!(worker.pid(), None);
    assert_eq!(join_bounded(worker).unwrap(), 3);
    let captured = vec![1u8; 3];
    let worker = run_thread(|v: Vec<u8>| v.len(), (captured,)).unwrap();
    assert_eq!(join_bounded(worker).unwrap(), 3);
    let worker = run_thread(fail as fn(String) -> u64, ("thread luck".to_owned(),)).unwrap();
    assert!(matches!(
        join_bounded(worker),
        Err(Error::Panicked { message, .. }) if message == "thread luck"
    ));
}

#[test]
fn a_thread_worker_times_out_then_joins_and_cannot_be_killed() {
    let _bound = bound::within(TEST_BOUND);
    let path = marker("thread");
    let mut worker = run_thread(
        mark_and_sleep as fn(PathBuf, u64) -> u64,
        (path.clone(), 300),
    )
    .unwrap();
    assert_eq!(worker.join_timeout(Duration::from_millis(5)).unwrap(), None);
    assert!(worker.is_alive());
    let error = worker.kill().unwrap_err();
    assert!(matches!(error, Error::ThreadNotKillable));
    assert!(error.to_string().contains("cannot be killed"), "{error}");
    assert!(worker.wait_timeout(BOUND));
    assert!(!worker.is_alive());
    assert_eq!(worker.join_timeout(Duration::ZERO).unwrap(), Some(300));
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn map_runs_over_a_pool_of_one_worker_per_core() {
    let _bound = bound::within(TEST_BOUND);
    assert!(skprocess::num_cpus() >= 1);
    let squares = bound::on_thread(BOUND, "map()", || skprocess::map(square, 1..=5u64)).unwrap();
    assert_eq!(squares, [1, 4, 9, 16, 25]);
}
