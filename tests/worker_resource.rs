//! `WorkerResource`: one persistent worker process — sync and async calls in order, a
//! swappable function, typed failures that keep it serving, its status, backpressure, and
//! its end (join, terminate, drop, crash).
#![cfg(any(target_os = "linux", windows))]

use std::time::{Duration, Instant};

use skprocess::{Error, WorkerResource};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;
use pid::exists;
use skprocess::error::Usage;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

fn double(x: u64) -> u64 {
    x * 2
}

fn triple(x: u64) -> u64 {
    x * 3
}

fn panic_on_seven(x: u64) -> u64 {
    assert_ne!(x, 7, "seven is not allowed");
    x
}

fn parse(text: String) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn sleep_millis(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

/// Runs a test's body on a thread of its own and waits for it at most `BOUND`: the
/// resource's `recv`, `execute` and `join` have no timeout of their own.
#[track_caller]
fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    bound::on_thread(BOUND, "the test's calls on the worker", work)
}

#[test]
fn execute_send_poll_recv_and_update_fn_answer_in_order() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(double).unwrap();
        assert_eq!(worker.execute(21).unwrap(), 42);
        for x in 0..10 {
            worker.send(x).unwrap();
        }
        assert!(matches!(
            worker.execute(1),
            Err(Error::Usage(Usage::UnreadResults { unread: 10 }))
        ));
        assert!(worker.poll(BOUND).unwrap());
        let results: Vec<u64> = (0..10).map(|_| worker.recv().unwrap()).collect();
        assert_eq!(results, (0..10).map(|x| x * 2).collect::<Vec<_>>());
        assert!(!worker.poll(Duration::ZERO).unwrap());
        assert!(matches!(
            worker.recv(),
            Err(Error::Usage(Usage::NothingPending))
        ));
        worker.update_fn(triple).unwrap();
        assert_eq!(worker.execute(5).unwrap(), 15);
        worker.stop().unwrap();
    });
}

#[test]
fn poll_is_false_while_the_function_runs() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(300).unwrap();
        assert!(!worker.poll(Duration::from_millis(1)).unwrap());
        assert!(worker.poll(BOUND).unwrap());
        assert_eq!(worker.recv().unwrap(), 300);
    });
}

#[test]
fn a_panic_is_a_typed_error_and_the_worker_keeps_serving() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(panic_on_seven).unwrap();
        match worker.execute(7) {
            Err(Error::Panicked { message, .. }) => assert!(message.contains("seven"), "{message}"),
            other => panic!("expected a panic, got {other:?}"),
        }
        assert_eq!(worker.execute(8).unwrap(), 8);
        assert_eq!(worker.status().unwrap().items, 2);
    });
}

#[test]
fn a_returned_err_comes_back_typed() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(parse).unwrap();
        assert_eq!(worker.execute("12".into()).unwrap(), Ok(12));
        assert_eq!(
            worker.execute("x".into()).unwrap(),
            Err("not a number: x".to_owned())
        );
    });
}

#[test]
fn status_counts_items_busy_and_starved_time_measured_in_the_worker() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            worker.execute(20).unwrap();
        }
        let status = worker.status().unwrap();
        assert_eq!(status.items, 3);
        assert!(status.busy >= Duration::from_millis(60), "{status:?}");
        assert!(status.starved >= Duration::from_millis(50), "{status:?}");
        assert!(status.uptime >= status.busy + status.starved, "{status:?}");
        assert!(status.utilization() > 0.0 && status.utilization() <= 1.0);
    });
}

#[test]
fn send_refuses_more_than_the_unread_limit() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::with_unread_limit(double, 4).unwrap();
        for x in 0..4 {
            worker.send(x).unwrap();
        }
        let error = worker.send(4).unwrap_err();
        assert!(
            matches!(error, Error::TooManyUnread { limit: 4 }),
            "{error}"
        );
        assert_eq!(worker.recv().unwrap(), 0);
        worker.send(4).unwrap();
    });
}

#[test]
fn a_crashed_worker_is_a_clear_error_on_the_next_call() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(60_000).unwrap();
        pid::kill(worker.pid());
        match worker.recv() {
            Err(Error::Crashed { status, .. }) => assert!(status.contains(pid::KILLED), "{status}"),
            other => panic!("expected a crash, got {other:?}"),
        }
        assert!(matches!(worker.execute(1), Err(Error::Crashed { .. })));
        assert!(matches!(worker.status(), Err(Error::Crashed { .. })));
    });
}

#[test]
fn terminate_and_drop_end_the_process() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(60_000).unwrap();
        let pid = worker.pid();
        worker.kill();
        assert!(!exists(pid), "terminate left the worker");
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(60_000).unwrap();
        let pid = worker.pid();
        drop(worker);
        bound::until(BOUND, "the dropped worker is reaped", || !exists(pid));
    });
}

#[test]
fn join_waits_for_the_data_already_sent() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(100).unwrap();
        let pid = worker.pid();
        let started = Instant::now();
        worker.stop().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(!exists(pid));
    });
}

#[test]
fn pool_status_gives_one_measured_status_per_worker() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let pool = skprocess::Pool::new(2).unwrap();
        assert_eq!(pool.map(double, 0..100u64).unwrap().len(), 100);
        // A chunk's timing may arrive just after its last result: wait for it (bounded).
        let mut statuses = pool.status();
        bound::eventually(BOUND, || {
            statuses = pool.status();
            statuses.iter().map(|s| s.items).sum::<u64>() >= 100
        });
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses.iter().map(|s| s.items).sum::<u64>(), 100);
        for status in &statuses {
            assert!(status.uptime >= status.busy, "{status:?}");
            assert_eq!(status.starved, status.uptime - status.busy);
        }
    });
}

#[test]
fn recv_execute_and_status_have_deadline_forms_and_duration_max_means_no_limit() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = WorkerResource::new(sleep_millis).unwrap();
    // A result that takes far longer than the wait: none yet, and it stays pending.
    worker.send(1500).unwrap();
    assert_eq!(
        worker.recv_timeout(Duration::from_millis(20)).unwrap(),
        None
    );
    // The status is answered after the data sent before it: not within the wait either.
    assert!(
        worker
            .status_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    assert_eq!(worker.recv_timeout(Duration::MAX).unwrap(), Some(1500));
    // The late answer to the abandoned status is not taken for a new one.
    worker.execute_timeout(5, BOUND).unwrap();
    let status = worker.status_timeout(BOUND).unwrap().unwrap();
    assert_eq!(status.items, 2);
    // `execute_timeout` that runs out leaves the result to `recv`.
    assert_eq!(
        worker
            .execute_timeout(1000, Duration::from_millis(20))
            .unwrap(),
        None
    );
    assert_eq!(worker.recv_timeout(BOUND).unwrap(), Some(1000));
    assert_eq!(worker.execute_timeout(7, Duration::MAX).unwrap(), Some(7));
}

// Unix only: it waits for the worker's thread to sleep (its state from the OS).
#[cfg(unix)]
#[test]
fn another_thread_can_kill_a_worker_whose_call_waits() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = WorkerResource::new(sleep_millis).unwrap();
    let killer = worker.kill_handle();
    let pid = worker.pid();
    let waiting = std::thread::spawn(move || worker.execute(60_000));
    bound::until(BOUND, "the worker runs the call", || {
        pid::state(pid) == Some('S')
    });
    killer.kill();
    match bound::join(waiting, BOUND, "the waiting call") {
        Err(Error::Crashed { status, .. }) => assert!(status.contains("SIGKILL"), "{status}"),
        other => panic!("expected the kill to end the call, got {other:?}"),
    }
    bound::until(BOUND, "the killed worker is reaped", || !exists(pid));
    killer.kill(); // Killing again is harmless.
}

#[cfg(unix)]
fn length(data: Vec<u8>) -> usize {
    data.len()
}

// Unix only: SIGSTOP and SIGCONT.
#[cfg(unix)]
#[test]
fn calls_to_a_stopped_worker_end_at_their_deadline_and_go_on_once_it_resumes() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(length).unwrap();
        assert_eq!(worker.execute(vec![1; 10]).unwrap(), 10);
        let pid = worker.pid();
        pid::signal(pid, libc::SIGSTOP);
        bound::until(BOUND, "the worker is stopped", || pid::stopped(pid));
        // 16 MiB cannot fit in the socket: the stopped worker takes only part of it.
        let big = vec![7u8; 16 << 20];
        let short = Duration::from_millis(100);
        assert_eq!(worker.execute_timeout(big, short).unwrap(), None);
        // Nothing more goes out until it reads again: the data comes back.
        match worker.send_timeout(vec![1], short) {
            Err(skprocess::TrySendError::Full(data)) => assert_eq!(data, [1]),
            other => panic!("expected the data back, got {other:?}"),
        }
        assert!(worker.status_timeout(short).unwrap().is_none());
        pid::signal(pid, libc::SIGCONT);
        assert_eq!(worker.recv_timeout(BOUND).unwrap(), Some(16 << 20));
        assert_eq!(worker.execute_timeout(vec![1, 2], BOUND).unwrap(), Some(2));
        assert_eq!(worker.status_timeout(BOUND).unwrap().unwrap().items, 3);
    });
}

/// Sleeps `millis`, then creates the file at `path`: proof that the call ran to its end.
fn sleep_then_touch((millis, path): (u64, String)) -> bool {
    std::thread::sleep(Duration::from_millis(millis));
    std::fs::write(path, b"done").is_ok()
}

#[test]
fn stop_waits_without_limit_for_the_data_already_sent() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        // Longer than the bound `stop` used to put on the worker's end (10 s), after which it
        // killed the worker and reported success.
        let path = std::env::temp_dir().join(format!("skp-stop-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut worker = WorkerResource::new(sleep_then_touch).unwrap();
        worker.send((11_000, path.display().to_string())).unwrap();
        let pid = worker.pid();
        worker.stop().unwrap();
        assert!(path.exists(), "stop cut the call short");
        assert!(!exists(pid));
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn stop_timeout_says_whether_the_worker_finished_and_kills_it_when_not() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(60_000).unwrap();
        let pid = worker.pid();
        assert!(!worker.stop_timeout(Duration::from_millis(100)).unwrap());
        assert!(!exists(pid), "the worker outlived stop_timeout");
        let mut worker = WorkerResource::new(sleep_millis).unwrap();
        worker.send(10).unwrap();
        let pid = worker.pid();
        assert!(worker.stop_timeout(BOUND).unwrap());
        assert!(!exists(pid));
        let worker = WorkerResource::new(sleep_millis).unwrap();
        assert!(worker.stop_timeout(Duration::MAX).unwrap());
    });
}

#[cfg(unix)]
fn length_plus_one(data: Vec<u8>) -> usize {
    data.len() + 1
}

// Unix only: SIGSTOP and SIGCONT.
#[cfg(unix)]
#[test]
fn update_fn_timeout_gives_up_on_a_stopped_worker_and_changes_nothing() {
    let _bound = bound::within(TEST_BOUND);
    bounded(|| {
        let mut worker = WorkerResource::new(length).unwrap();
        assert_eq!(worker.execute(vec![1; 10]).unwrap(), 10);
        let pid = worker.pid();
        pid::signal(pid, libc::SIGSTOP);
        bound::until(BOUND, "the worker is stopped", || pid::stopped(pid));
        // 16 MiB cannot fit in the socket: the stopped worker takes only part of it, and
        // nothing after it goes out until it reads again.
        let short = Duration::from_millis(100);
        assert_eq!(
            worker.execute_timeout(vec![7u8; 16 << 20], short).unwrap(),
            None
        );
        assert!(!worker.update_fn_timeout(length_plus_one, short).unwrap());
        pid::signal(pid, libc::SIGCONT);
        assert_eq!(worker.recv_timeout(BOUND).unwrap(), Some(16 << 20));
        // The function did not change; now it does.
        assert_eq!(worker.execute(vec![1, 2]).unwrap(), 2);
        assert!(worker.update_fn_timeout(length_plus_one, BOUND).unwrap());
        assert_eq!(worker.execute(vec![1, 2]).unwrap(), 3);
    });
}
