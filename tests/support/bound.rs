//! Bounds on every wait in a test, so a regression fails in seconds instead of hanging the run.
//! Included with `#[path = "support/bound.rs"] mod bound;`.
//!
//! Prefer a per-call bound: the API's own (`result_timeout`, `recv_timeout`, `join_timeout`,
//! `wait_timeout`), else [`on_thread`] (a call that can move to a thread of its own fails the
//! test naming the call), [`join`] for a thread, [`until`] for a condition. A call that
//! borrows and cannot move gets [`call`]; a whole test whose many waits have no per-call form
//! gets [`within`]. Both of those abort the binary, naming what hung, because a borrowed wait
//! cannot be abandoned.
#![allow(dead_code)]

use std::panic::Location;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Disarms the bound when dropped, at the end of the test or call (also when it panics).
pub struct Bound {
    finished: Arc<(Mutex<bool>, Condvar)>,
}

/// Arms a bound of `limit` for the current test: `let _bound = bound::within(BOUND);` as a
/// test's first line. If the test still runs when the bound passes, the binary says which
/// test hung and aborts.
pub fn within(limit: Duration) -> Bound {
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    watch(limit, format!("`{name}`"))
}

/// Runs `work` on the calling thread; if it has not returned after `limit`, the binary says
/// which call (`what`, at the caller's line) hung and aborts. For borrowed calls that cannot
/// move to a thread of their own.
#[track_caller]
pub fn call<T>(limit: Duration, what: &str, work: impl FnOnce() -> T) -> T {
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let at = Location::caller();
    let _bound = watch(limit, format!("`{name}`: {what} ({at})"));
    work()
}

/// Runs `work` on a thread of its own and waits at most `limit` for it; past that the test
/// fails naming `what` (the thread is left behind). A panic in `work` fails the test too.
#[track_caller]
pub fn on_thread<T: Send + 'static>(
    limit: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let at = Location::caller();
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    match outcome.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?} ({at})"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked ({at})"),
    }
}

/// Joins `thread`, waiting at most `limit` for it to finish; past that the test fails naming
/// `what`. A panic on the thread is passed on.
#[track_caller]
pub fn join<T>(thread: JoinHandle<T>, limit: Duration, what: &str) -> T {
    let at = Location::caller();
    let finished = eventually(limit, || thread.is_finished());
    assert!(finished, "{what} did not finish within {limit:?} ({at})");
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now().checked_add(limit);
    loop {
        if condition() {
            return true;
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `condition` holds; past `limit` the test fails naming `what`.
#[track_caller]
pub fn until(limit: Duration, what: &str, condition: impl FnMut() -> bool) {
    let at = Location::caller();
    assert!(
        eventually(limit, condition),
        "{what}: not within {limit:?} ({at})"
    );
}

/// Starts a watchdog that aborts the binary with `message` unless the returned [`Bound`] is
/// dropped within `limit`.
fn watch(limit: Duration, hung: String) -> Bound {
    let finished = Arc::new((Mutex::new(false), Condvar::new()));
    let watched = Arc::clone(&finished);
    std::thread::spawn(move || {
        let (done, changed) = &*watched;
        let deadline = Instant::now().checked_add(limit);
        let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                // Straight to stderr: `eprintln!` goes to the test's captured output, which
                // the abort throws away.
                let said =
                    format!("{hung} did not finish within its bound of {limit:?}; aborting\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), said.as_bytes());
                std::process::abort();
            }
            done = changed
                .wait_timeout(done, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    });
    Bound { finished }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let (done, changed) = &*self.finished;
        *done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }
}
