//! The shared vocabulary (ARCHITECTURE.md, "The public vocabulary"): `stop` asks to finish and
//! waits, `request_stop` only asks, `kill` ends now and returns once nothing it ended is alive,
//! `pause`/`resume` hold a share, `join` returns the result, and every wait has a `_timeout`
//! form where `Duration::MAX` means no limit.
#![cfg(any(target_os = "linux", windows))]

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);
/// The net under the waits that have no per-call bound.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// Counts runs until it is asked to stop; tells the parent once it runs.
#[derive(Serialize, Deserialize)]
struct Looper {
    runs: u64,
}

#[skprocess(runs = None, outbox = u64)]
impl Looper {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        if self.runs == 0 {
            ctx.tell(1)?;
        }
        self.runs += 1;
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    }

    fn result(&mut self) -> u64 {
        self.runs
    }
}

#[test]
fn handle_stop_asks_and_waits_for_the_end() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Looper { runs: 0 }.start().unwrap();
    assert_eq!(handle.listen().unwrap(), 1);
    let pid = handle.pid();
    handle.stop().unwrap();
    // Over when `stop` returns: the child exited and was reaped, the output waits.
    assert!(
        handle.wait_timeout(Duration::ZERO),
        "stop returned before the end"
    );
    assert!(
        pid::reaped(pid),
        "child {pid} was not reaped when stop returned"
    );
    assert!(handle.result_timeout(BOUND).unwrap() >= 1);
}

#[test]
fn handle_request_stop_only_asks() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Looper { runs: 0 }.start().unwrap();
    assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(1));
    handle.request_stop();
    assert!(handle.stop_timeout(BOUND).unwrap());
    assert!(handle.result_timeout(BOUND).unwrap() >= 1);
}

#[test]
fn duration_max_is_no_limit_everywhere() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Looper { runs: 0 }
        .start_with(
            Looper::default_config()
                .join_in(Duration::MAX)
                .timeout(skprocess::Hook::Run, Duration::MAX),
        )
        .unwrap();
    assert_eq!(handle.listen_timeout(Duration::MAX).unwrap(), Some(1));
    assert!(handle.stop_timeout(Duration::MAX).unwrap());
    assert!(handle.wait_timeout(Duration::MAX));
}

fn slow(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x
}

#[test]
fn pool_stop_waits_for_running_maps_and_workers() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let pids = pool.worker_pids();
    let job = pool.background().map(slow, [1, 2]);
    pool.stop().unwrap();
    assert!(pool.is_stopped());
    // The running map finished and the worker exited before `stop` returned.
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [1, 2]);
    for worker in pids {
        assert!(!pid::running(worker), "worker {worker} outlived stop");
    }
}

#[test]
fn pool_kill_returns_with_its_workers_gone() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    let job = pool.background().map(slow, 0..20);
    pool.kill().unwrap();
    for worker in pids {
        assert!(
            !pid::running(worker),
            "worker {worker} still ran when kill returned"
        );
    }
    assert!(job.join_timeout(BOUND).unwrap().is_err());
}

#[test]
fn pool_stop_timeout_gives_up_and_the_pool_stays_stopped() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let job = pool.background().map(slow, [1, 2, 3, 4, 5]);
    assert!(!pool.stop_timeout(Duration::from_millis(10)).unwrap());
    assert!(pool.is_stopped());
    assert!(pool.stop_timeout(BOUND).unwrap());
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [1, 2, 3, 4, 5]);
}

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

#[test]
fn share_pause_and_resume() {
    let share = Share::new(Counter::default()).unwrap();
    assert!(!share.is_paused());
    share.n.set(1);
    share.pause().unwrap();
    assert!(share.is_paused());
    assert!(matches!(share.n.get(), Err(Error::SharePaused)));
    share.resume().unwrap();
    assert!(!share.is_paused());
    assert_eq!(share.n.get().unwrap(), 1);
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn join_returns_the_result_of_workers_and_jobs() {
    let _bound = bound::within(TEST_BOUND);
    let worker = skprocess::run(double as fn(u64) -> u64, (4,)).unwrap();
    assert_eq!(worker.join().unwrap(), 8);
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.background().map(double, [1]).join().unwrap(), [2]);
}

#[test]
fn worker_resource_stop_finishes_what_was_sent() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = WorkerResource::new(double).unwrap();
    let pid = worker.pid();
    assert_eq!(worker.execute(2).unwrap(), 4);
    worker.stop().unwrap();
    assert!(
        pid::reaped(pid),
        "worker {pid} was not reaped when stop returned"
    );
    let mut worker = WorkerResource::new(double).unwrap();
    let pid = worker.pid();
    worker.send(1).unwrap();
    worker.kill();
    assert!(
        pid::reaped(pid),
        "worker {pid} was not reaped when kill returned"
    );
}

fn nothing(_: u64) {}

#[test]
fn process_queue_kill_ends_the_worker() {
    let queue = ProcessQueue::new(nothing);
    queue.start([1]).unwrap();
    queue.kill().unwrap();
    assert!(!queue.is_alive());
}
