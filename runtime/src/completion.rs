//! [`Completion`]: a value set once by one thread and waited for by any number of others,
//! blocking (with or without a deadline) or as a future. The one one-shot of the runtime: a
//! [`Worker`](crate::Worker)'s outcome and a background or async pool map's outcome both
//! travel through it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

/// Where the value is.
enum State<T> {
    Pending,
    Done(T),
    /// The value went to a taker.
    Taken,
}

struct Slot<T> {
    state: State<T>,
    /// The task to wake when the value arrives (the last one that polled).
    waker: Option<Waker>,
}

/// What [`Completion::take_until`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take<T> {
    /// The value, now taken.
    Value(T),
    /// No value yet when the deadline passed.
    Pending,
    /// The value was taken before.
    Taken,
}

/// A value set once, waited for by any number of threads or one task.
pub(crate) struct Completion<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

impl<T> Completion<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            slot: Mutex::new(Slot {
                state: State::Pending,
                waker: None,
            }),
            done: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the value and wakes every waiter; a second value is dropped.
    pub(crate) fn complete(&self, value: T) {
        let mut slot = self.lock();
        if matches!(slot.state, State::Pending) {
            slot.state = State::Done(value);
        }
        let waker = slot.waker.take();
        drop(slot);
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the value was set (it may have been taken since).
    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.lock().state, State::Pending)
    }

    /// Waits until the value is set or `deadline` (`None`: no deadline) passes.
    fn wait(&self, deadline: Option<Instant>) -> MutexGuard<'_, Slot<T>> {
        let mut slot = self.lock();
        while matches!(slot.state, State::Pending) {
            match crate::deadline::wait(&self.done, slot, deadline) {
                Ok(next) => slot = next,
                Err(last) => return last,
            }
        }
        slot
    }

    /// Whether the value was set by `deadline` (`None`: waits until it is).
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        !matches!(self.wait(deadline).state, State::Pending)
    }

    /// Takes the value once it is set, waiting at most until `deadline` (`None`: no deadline).
    pub(crate) fn take_until(&self, deadline: Option<Instant>) -> Take<T> {
        let mut slot = self.wait(deadline);
        match std::mem::replace(&mut slot.state, State::Taken) {
            State::Pending => {
                slot.state = State::Pending;
                Take::Pending
            }
            State::Done(value) => Take::Value(value),
            State::Taken => Take::Taken,
        }
    }

    /// Takes the value if it is there; otherwise `waker` is woken once it is.
    pub(crate) fn poll_take(&self, waker: &Waker) -> Option<T> {
        let mut slot = self.lock();
        if let State::Done(_) = slot.state {
            if let State::Done(value) = std::mem::replace(&mut slot.state, State::Taken) {
                return Some(value);
            }
        }
        slot.waker = Some(waker.clone());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_value_is_taken_once_and_waiters_on_other_threads_wake() {
        let completion = Completion::<u32>::new();
        assert_eq!(completion.take_until(Some(Instant::now())), Take::Pending);
        let waiter = {
            let completion = Arc::clone(&completion);
            std::thread::spawn(move || completion.wait_until(None))
        };
        completion.complete(7);
        completion.complete(8);
        assert!(waiter.join().unwrap());
        assert_eq!(completion.take_until(None), Take::Value(7));
        assert_eq!(completion.take_until(None), Take::Taken);
        assert!(completion.is_done());
    }

    #[test]
    fn a_polling_task_is_woken_when_the_value_arrives() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let completion = Completion::<&str>::new();
        assert_eq!(completion.poll_take(&waker), None);
        let deadline = Instant::now().checked_add(Duration::from_secs(30));
        std::thread::scope(|s| {
            s.spawn(|| completion.complete("done"));
        });
        assert!(completion.wait_until(deadline));
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(completion.poll_take(&waker), Some("done"));
    }
}
