//! A worker that dies never hangs a map: SIGKILL, abort and segfault fail exactly the item
//! that was running, the rest finish, a replacement starts, and the next map works. A chaos
//! run kills random workers during a 10k-item map. Workers never outlive the pool's process.
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/pid.rs"]
mod pid;
use pid::running;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

fn die_on_five(how: (u64, i32)) -> u64 {
    let (x, signal) = how;
    if x == 5 {
        // Rust's own SIGSEGV handler (stack-overflow detection) would let a raised one return.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    x * 10
}

/// The status of an item's crash, and the item's index.
fn crashed(error: &Error) -> Option<(u64, &str)> {
    match error {
        Error::Item { index, error } => match &**error {
            Error::Crashed { status, .. } => Some((*index, status.as_str())),
            _ => None,
        },
        _ => None,
    }
}

/// Runs `work` on a thread and waits for it at most `BOUND`: a map that hangs fails the test.
fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    outcome
        .recv_timeout(BOUND)
        .expect("the map did not return within the bound")
}

fn wait_for_workers(pool: &Pool, n: usize) {
    let deadline = Instant::now() + BOUND;
    while pool.worker_pids().len() != n {
        assert!(
            Instant::now() < deadline,
            "the pool did not get back to {n} workers"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigkill_abort_and_segfault_fail_exactly_the_running_item_and_the_rest_finish() {
    let pool = Arc::new(Pool::new(2).unwrap());
    for (signal, name) in [
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGSEGV, "SIGSEGV"),
    ] {
        let mapping = Arc::clone(&pool);
        let outcomes: Vec<_> = bounded(move || {
            mapping
                .imap(die_on_five, (0..20u64).map(|x| (x, signal)))
                .collect()
        });
        assert_eq!(outcomes.len(), 20);
        for (i, outcome) in outcomes.iter().enumerate() {
            if i == 5 {
                let (index, status) = crashed(outcome.as_ref().unwrap_err()).unwrap();
                assert_eq!(index, 5);
                assert!(status.contains(name), "{status}");
            } else {
                assert_eq!(outcome.as_ref().unwrap(), &(i as u64 * 10), "item {i}");
            }
        }
        wait_for_workers(&pool, 2);
        assert_eq!(pool.map(|x: u64| x + 1, [1, 2]).unwrap(), [2, 3]);
    }
}

fn sleep_then_double(x: u64) -> u64 {
    if x == 0 {
        std::thread::sleep(Duration::from_secs(3));
    }
    x * 2
}

#[test]
fn a_worker_sigkilled_from_outside_fails_its_running_item_with_the_signal() {
    let pool = Arc::new(Pool::new(1).unwrap());
    let pid = pool.worker_pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let mapping = Arc::clone(&pool);
    let outcomes: Vec<_> = bounded(move || mapping.imap(sleep_then_double, 0..5u64).collect());
    killer.join().unwrap();
    let (index, status) = crashed(outcomes[0].as_ref().unwrap_err()).unwrap();
    assert_eq!((index, status), (0, "killed by signal 9 (SIGKILL)"));
    for (i, outcome) in outcomes.iter().enumerate().skip(1) {
        assert_eq!(outcome.as_ref().unwrap(), &(i as u64 * 2));
    }
    wait_for_workers(&pool, 1);
    assert_ne!(pool.worker_pids()[0], pid);
}

fn spin_double(x: u64) -> u64 {
    // A little work, so kills land while items run.
    let mut acc = x;
    for i in 0..2_000u64 {
        acc = std::hint::black_box(acc.wrapping_add(i));
    }
    std::hint::black_box(acc);
    x * 2
}

#[test]
fn chaos_random_sigkills_during_a_10k_map_account_for_every_item() {
    let workers = 3;
    let pool = Arc::new(Pool::new(workers).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (pool, done) = (Arc::clone(&pool), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut kills = 0;
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            while !done.load(Ordering::SeqCst) && kills < 15 {
                std::thread::sleep(Duration::from_millis(15));
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pid = pids[(seed % pids.len() as u64) as usize];
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                kills += 1;
            }
            kills
        })
    };
    let mapping = Arc::clone(&pool);
    let outcomes: Vec<_> = bounded(move || mapping.imap(spin_double, 0..10_000u64).collect());
    done.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert_eq!(outcomes.len(), 10_000);
    let mut failed = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(value) => assert_eq!(*value, i as u64 * 2),
            Err(error) => {
                let (index, status) = crashed(error).unwrap_or_else(|| panic!("{error:?}"));
                assert_eq!(index, i as u64);
                assert!(status.contains("SIGKILL"), "{status}");
                failed += 1;
            }
        }
    }
    eprintln!("chaos: {kills} kills, {failed} items crashed");
    assert!(failed <= kills, "{failed} items failed for {kills} kills");
    wait_for_workers(&pool, workers);
    assert_eq!(pool.map(|x: u64| x, [7]).unwrap(), [7]);
}

fn wait_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&pid| running(pid)) {
        assert!(
            Instant::now() < deadline,
            "workers {pids:?} outlived their pool"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process that starts a pool, reports its workers' pids, and waits forever.
#[derive(Serialize, Deserialize)]
struct PoolOwner;

#[skprocess(outbox = Vec<u32>)]
impl PoolOwner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let pool = Pool::new(2)?;
        ctx.tell(pool.worker_pids())?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn workers_exit_when_the_pools_process_is_sigkilled() {
    let owner = PoolOwner.start().unwrap();
    let pids = owner.listen(BOUND).unwrap().unwrap();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&pid| running(pid)));
    unsafe { libc::kill(owner.pid() as i32, libc::SIGKILL) };
    wait_gone(&pids, Duration::from_secs(2));
    let _ = owner.result_timeout(BOUND);
}

#[test]
fn dropping_or_terminating_a_pool_ends_its_workers() {
    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    drop(pool);
    wait_gone(&pids, Duration::from_secs(2));
    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    pool.terminate();
    wait_gone(&pids, Duration::from_secs(2));
    assert!(matches!(pool.map(|x: u64| x, [1]), Err(Error::PoolClosed)));
}
