//! The slot a worker fills once it ended, and its waiters.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Where a worker is.
enum State<R> {
    Running,
    Ended(Result<R, Error>),
    /// The result went to a `join`.
    Taken,
}

/// A worker's outcome, set once by its thread, waited for by any number of threads.
pub(crate) struct Completion<R> {
    state: Mutex<State<R>>,
    ended: Condvar,
}

impl<R> Completion<R> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::Running),
            ended: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records how the worker ended; a second outcome is ignored.
    pub(crate) fn end(&self, outcome: Result<R, Error>) {
        let mut state = self.lock();
        if matches!(*state, State::Running) {
            *state = State::Ended(outcome);
        }
        self.ended.notify_all();
    }

    pub(crate) fn is_ended(&self) -> bool {
        !matches!(*self.lock(), State::Running)
    }

    /// Waits at most `timeout` while the worker runs; the state then.
    fn wait(&self, timeout: Duration) -> MutexGuard<'_, State<R>> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        while matches!(*state, State::Running) {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            state = self
                .ended
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state
    }

    /// Whether the worker ended within `timeout`.
    pub(crate) fn wait_within(&self, timeout: Duration) -> bool {
        !matches!(*self.wait(timeout), State::Running)
    }

    /// Takes the outcome once the worker ended within `timeout`; `Ok(None)` if it still runs.
    pub(crate) fn take_within(&self, timeout: Duration) -> Result<Option<R>, Error> {
        let mut state = self.wait(timeout);
        match std::mem::replace(&mut *state, State::Taken) {
            State::Running => {
                *state = State::Running;
                Ok(None)
            }
            State::Ended(outcome) => outcome.map(Some),
            State::Taken => Err(Error::AlreadyJoined),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_outcome_is_taken_once_and_waiters_on_other_threads_wake() {
        let completion = Arc::new(Completion::<u32>::new());
        assert_eq!(completion.take_within(Duration::ZERO).unwrap(), None);
        let waiter = {
            let completion = Arc::clone(&completion);
            std::thread::spawn(move || completion.wait_within(Duration::from_secs(30)))
        };
        completion.end(Ok(7));
        completion.end(Ok(8));
        assert!(waiter.join().unwrap());
        assert_eq!(completion.take_within(Duration::ZERO).unwrap(), Some(7));
        assert!(matches!(
            completion.take_within(Duration::ZERO),
            Err(Error::AlreadyJoined)
        ));
        assert!(completion.is_ended());
    }
}
