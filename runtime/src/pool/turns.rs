//! A channel whose senders serve it themselves: each event is sent in order on one channel,
//! and the sender then takes a turn at the receiving state — under one lock, never waiting
//! for it — handling everything waiting. A sender that finds the lock taken leaves its event
//! to the holder, which looks again once it let go. So an event is handled on the thread that
//! sent it whenever nobody else is serving, and no thread is woken to carry it: on a loaded
//! machine, a wake-up on another core costs more than the handling.
//!
//! The state's own thread remains for what no sender brings — deadlines, and work that
//! blocks (stopping workers) — and follows the same rule: it holds the state only to serve or
//! to block on work, lets go, serves what was left meanwhile, and then idles
//! ([`Turns::idle`]) until a sender's turn wakes it because the state says so
//! ([`Served::wants_thread`]) or its deadline comes.
//!
//! Why no event is ever left behind: a sender sends, then counts its event as pending, then
//! tries for the lock; every receive counts one down, and whoever lets go of the state tries
//! again while any is pending. An event counted is always in the channel already, so a
//! holder that tries again finds it — or the sender, trying after the holder let go, does.

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SendError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// The state behind the channel, as the senders' turns see it.
pub(crate) trait Served {
    /// Handles every event waiting on its receiver.
    fn serve_waiting(&mut self);
    /// Whether its thread must look now (a deadline came sooner than it waits for, or there
    /// is work that blocks).
    fn wants_thread(&self) -> bool;
}

/// What the senders and the state's thread share.
pub(crate) struct Turns<S> {
    pending: Arc<AtomicIsize>,
    state: Mutex<Option<S>>,
    /// Set when a turn wants the thread; kept until it looks, so no wake is lost.
    wanted: Mutex<bool>,
    woken: Condvar,
}

/// The sending side, for any number of threads.
pub(crate) struct TurnSender<T, S> {
    sender: Sender<T>,
    turns: Option<Arc<Turns<S>>>,
}

impl<T, S> Clone for TurnSender<T, S> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            turns: self.turns.clone(),
        }
    }
}

/// The receiving side, inside the state: it counts down what it receives.
pub(crate) struct TurnReceiver<T> {
    receiver: Receiver<T>,
    pending: Arc<AtomicIsize>,
}

/// A channel whose senders take turns at the state (see [`Turns::install`]).
pub(crate) fn channel<T, S>() -> (TurnSender<T, S>, TurnReceiver<T>, Arc<Turns<S>>) {
    let (sender, receiver) = mpsc::channel();
    let pending = Arc::new(AtomicIsize::new(0));
    let turns = Arc::new(Turns {
        pending: Arc::clone(&pending),
        state: Mutex::new(None),
        wanted: Mutex::new(false),
        woken: Condvar::new(),
    });
    let sender = TurnSender {
        sender,
        turns: Some(Arc::clone(&turns)),
    };
    (sender, TurnReceiver { receiver, pending }, turns)
}

/// A plain channel with the same sending side: its receiver is served by a thread alone (the
/// cluster's engine).
#[cfg(feature = "cluster")]
pub(crate) fn plain<T, S>() -> (TurnSender<T, S>, Receiver<T>) {
    let (sender, receiver) = mpsc::channel();
    (
        TurnSender {
            sender,
            turns: None,
        },
        receiver,
    )
}

impl<T, S: Served> TurnSender<T, S> {
    /// Sends `event`, then serves the state when nobody else is; `Err` when the receiver is
    /// gone.
    pub(crate) fn send(&self, event: T) -> Result<(), SendError<T>> {
        self.sender.send(event)?;
        if let Some(turns) = &self.turns {
            turns.pending.fetch_add(1, Ordering::SeqCst);
            turns.take_turns();
        }
        Ok(())
    }
}

impl<S: Served> Turns<S> {
    /// Puts the state in place; senders serve it from now on.
    pub(crate) fn install(&self, state: S) {
        *self.lock() = Some(state);
    }

    /// Takes the state out: senders no longer serve it.
    pub(crate) fn end(&self) -> Option<S> {
        self.lock().take()
    }

    /// Serves while events are pending and the lock is free.
    fn take_turns(&self) {
        while self.pending.load(Ordering::SeqCst) > 0 {
            let mut guard = match self.state.try_lock() {
                Ok(guard) => guard,
                // The holder serves what is pending once it lets go.
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            };
            let Some(state) = guard.as_mut() else {
                return; // Ended: nothing serves its events any more.
            };
            state.serve_waiting();
            let wake = state.wants_thread();
            drop(guard);
            if wake {
                *self.wanted.lock().unwrap_or_else(PoisonError::into_inner) = true;
                self.woken.notify_one();
            }
        }
    }

    /// The state, for its thread: waits while a sender serves it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets go of the state, serves what senders left while it was held, and waits until a
    /// turn wants the thread or `timeout` passes (`None`: no limit).
    pub(crate) fn idle(&self, guard: MutexGuard<'_, Option<S>>, timeout: Option<Duration>) {
        drop(guard);
        self.take_turns();
        let mut wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
        if !*wanted {
            wanted = match timeout {
                None => self
                    .woken
                    .wait(wanted)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(timeout) => {
                    self.woken
                        .wait_timeout(wanted, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        *wanted = false;
    }
}

impl<T> TurnReceiver<T> {
    fn counted<E>(&self, received: Result<T, E>) -> Result<T, E> {
        if received.is_ok() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        received
    }

    /// The next event waiting, without waiting.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.counted(self.receiver.try_recv())
    }

    /// The next event, waiting for it (the state's thread, holding the state).
    pub(crate) fn recv(&self) -> Result<T, mpsc::RecvError> {
        self.counted(self.receiver.recv())
    }

    /// The next event, waiting at most `timeout` for it.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.counted(self.receiver.recv_timeout(timeout))
    }
}

#[cfg(test)]
#[path = "turns_tests.rs"]
mod tests;
