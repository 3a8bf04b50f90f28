//! A bound on a whole test: `let _bound = bound::within(BOUND);` as a test's first line. If
//! the test is still running when the bound passes, the test binary says which test hung and
//! aborts, so a wait that never ends fails the run instead of hanging it. Included with
//! `#[path = "support/bound.rs"] mod bound;`.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Disarms the bound when dropped, at the end of the test (also when it panics).
pub struct Bound {
    finished: Arc<(Mutex<bool>, Condvar)>,
}

/// Arms a bound of `limit` for the current test.
pub fn within(limit: Duration) -> Bound {
    let finished = Arc::new((Mutex::new(false), Condvar::new()));
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let watched = Arc::clone(&finished);
    std::thread::spawn(move || {
        let (done, changed) = &*watched;
        let deadline = Instant::now() + limit;
        let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("`{name}` did not finish within its bound of {limit:?}; aborting");
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
