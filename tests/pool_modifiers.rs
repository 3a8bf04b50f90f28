//! Modifiers (SCN-18): background jobs, futures on any executor (dropping one cancels),
//! star composed with both; closed pools; maps from several threads; thread mode.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use skprocess::error::{Peer, Timed};
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// The smallest executor: polls on this thread, parks between wakes, gives up at `BOUND`.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + BOUND;
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        assert!(Instant::now() < deadline, "the future did not complete");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Polls two futures together until both are done.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}

fn double(x: u64) -> u64 {
    x * 2
}

fn inc(x: u64) -> u64 {
    x + 1
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn scn18_background_asynced_gather_and_star_give_the_specs_values() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let job = pool.background().map(double, [1, 2, 3]);
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [2, 4, 6]);
    assert_eq!(
        block_on(pool.asynced().map(double, [2, 3])).unwrap(),
        [4, 6]
    );
    let (first, second) = block_on(join(
        pool.asynced().map(inc, [1, 2]),
        pool.asynced().map(inc, [3, 4]),
    ));
    assert_eq!([first.unwrap(), second.unwrap()], [[2, 3], [4, 5]]);
    let job = pool.background().imap(double, [5, 6]);
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [10, 12]);
    assert_eq!(
        block_on(
            pool.star()
                .asynced()
                .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4)])
        )
        .unwrap(),
        [3, 7]
    );
    let job = pool
        .star()
        .timeout(Duration::from_secs(5))
        .background()
        .unordered_map(add as fn(u64, u64) -> u64, [(1, 1)]);
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [2]);
}

fn slow(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x
}

#[test]
fn a_background_job_reports_whether_it_finished_and_waits_with_a_limit() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let job = pool.background().map(slow, [1, 2]);
    assert!(!job.is_finished());
    let job = job.join_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [1, 2]);
}

#[test]
fn dropping_a_future_cancels_its_map_and_the_pool_goes_on() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let future = pool.asynced().map(slow, 0..50);
    let mut future = Box::pin(future);
    let waker = Waker::noop();
    assert!(
        future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    drop(future);
    // Only the chunk already sent still runs; the next map does not wait for 50 items.
    assert_eq!(pool.map(double, [1, 2]).unwrap(), [2, 4]);
}

#[test]
fn a_closed_pool_refuses_every_map_with_pool_closed() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.map(double, [1]).unwrap(), [2]);
    pool.stop().unwrap();
    assert!(pool.is_stopped());
    assert!(matches!(
        pool.map(double, [1]),
        Err(Error::Gone { peer: Peer::Pool })
    ));
    let outcomes: Vec<_> = pool.imap(double, [1]).collect();
    assert!(matches!(
        outcomes[..],
        [Err(Error::Gone { peer: Peer::Pool })]
    ));
    let job = pool.background().map(double, [1]);
    assert!(matches!(
        job.join_timeout(BOUND).unwrap(),
        Err(Error::Gone { peer: Peer::Pool })
    ));
    assert!(matches!(
        pool.map_processes(Vec::<Doubling>::new()),
        Err(Error::Gone { peer: Peer::Pool })
    ));
}

/// [`slow`], after creating the file `marker` names: the test sees the item has started.
fn slow_marked((x, marker): (u64, String)) -> u64 {
    let _ = std::fs::write(marker, b"");
    slow(x)
}

#[test]
fn close_lets_a_running_map_finish_and_then_the_workers_exit() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let pids = pool.worker_pids();
    let marker =
        std::env::temp_dir().join(format!("skp-pool-modifiers-{}-started", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let items = [1, 2, 3].map(|x| (x, marker.to_string_lossy().into_owned()));
    let job = pool.background().map(slow_marked, items);
    // Close once the map runs: its first item has started.
    bound::until(BOUND, "the map's first item starts", || marker.exists());
    let _ = std::fs::remove_file(&marker);
    pool.stop().unwrap();
    assert_eq!(job.join_timeout(BOUND).unwrap().unwrap(), [1, 2, 3]);
    drop(pool);
    for worker in pids {
        assert!(
            !pid::running(worker),
            "worker {worker} outlived its closed and dropped pool"
        );
    }
}

#[test]
fn a_map_created_before_close_runs_even_when_pulled_after_it() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(1).unwrap());
    let mapping = Arc::clone(&pool);
    let (sender, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lazy = mapping.imap(double, [1, 2, 3]);
        mapping.request_stop();
        let _ = sender.send(lazy.collect::<Result<Vec<u64>, Error>>());
    });
    let values = outcome
        .recv_timeout(BOUND)
        .expect("the map hung after close");
    assert_eq!(values.unwrap(), [2, 4, 6]);
}

#[derive(Serialize, Deserialize)]
struct Doubling(u64);

#[skprocess]
impl Doubling {
    fn run(&mut self) {
        self.0 *= 2;
    }

    fn result(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn maps_from_several_threads_at_once_do_not_mix() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(2).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                for round in 0..5u64 {
                    let base = t * 1_000_000 + round * 10_000;
                    let items: Vec<u64> = (base..base + 2_000).collect();
                    let expected: Vec<u64> = items.iter().map(|x| x * 2).collect();
                    assert_eq!(pool.map(double, items).unwrap(), expected);
                }
            })
        })
        .collect();
    for thread in threads {
        bound::join(thread, BOUND, "a mapping thread");
    }
}

#[test]
fn a_thread_pool_runs_the_same_maps_in_this_process() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::threads(2).unwrap();
    assert!(pool.worker_pids().is_empty());
    assert_eq!(pool.map(double, 1..=3).unwrap(), [2, 4, 6]);
    assert_eq!(
        pool.star()
            .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4)])
            .unwrap(),
        [3, 7]
    );
    assert_eq!(pool.map_processes([Doubling(4)]).unwrap(), [8]);
    let outcomes: Vec<_> = pool
        .timeout(Duration::from_millis(50))
        .imap(slow, [1, 2])
        .collect();
    assert!(outcomes.iter().all(|o| matches!(o, Err(Error::Item { error, .. }) if matches!(**error, Error::Timeout { of: Timed::Item, .. }))));
    assert_eq!(pool.map(double, [5]).unwrap(), [10]);
}

#[cfg(feature = "progress")]
#[test]
fn a_map_with_a_progress_bar_gives_the_same_values() {
    let _bound = bound::within(TEST_BOUND);
    // Tests run without a terminal on stderr, so no bar is drawn; the map is unchanged.
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.progress().map(double, [1, 2]).unwrap(), [2, 4]);
    assert_eq!(
        pool.star()
            .progress()
            .timeout(BOUND)
            .map(add as fn(u64, u64) -> u64, [(1, 2)])
            .unwrap(),
        [3]
    );
}
