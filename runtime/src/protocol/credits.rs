//! Credit-based flow control for payload messages.
//!
//! The receiver of payloads has a queue of fixed capacity; the sender starts with that many
//! credits and spends one per message. The receiver hands credits back in batches as its
//! reader takes messages out of the queue. Memory is therefore bounded on both sides, and the
//! connection itself never fills up with payloads that nobody reads.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::deadline;
use std::time::Instant;

/// What [`Credits::acquire`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// One credit was taken: send the message.
    Granted,
    /// None became available before the deadline.
    Full,
    /// The receiver is gone; no credit will ever come.
    Closed,
}

#[derive(Debug)]
struct CreditState {
    available: u64,
    unlimited: bool,
    closed: bool,
}

/// The sender's side: credits available to spend.
#[derive(Debug)]
pub(crate) struct Credits {
    state: Mutex<CreditState>,
    changed: Condvar,
}

impl Credits {
    /// Starts with `initial` credits: the receiver's queue capacity.
    pub(crate) fn new(initial: u32) -> Self {
        Self {
            state: Mutex::new(CreditState {
                available: u64::from(initial),
                unlimited: false,
                closed: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Takes one credit, waiting until `deadline` (`None`: without limit) for one to come back.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Acquired {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Acquired::Closed;
            }
            if state.unlimited {
                return Acquired::Granted;
            }
            if state.available > 0 {
                state.available -= 1;
                return Acquired::Granted;
            }
            state = match deadline::wait(&self.changed, state, deadline) {
                Ok(state) => state,
                Err(_) => return Acquired::Full,
            };
        }
    }

    /// Adds credits the receiver handed back.
    pub(crate) fn grant(&self, credits: u32) {
        self.lock().available += u64::from(credits);
        self.changed.notify_all();
    }

    /// Starts over with `credits` for a new receiver (a restarted child), reopening if closed.
    pub(crate) fn reset(&self, credits: u32) {
        let mut state = self.lock();
        state.available = u64::from(credits);
        state.unlimited = false;
        state.closed = false;
        drop(state);
        self.changed.notify_all();
    }

    /// The receiver discards everything from now on: sending never waits again.
    pub(crate) fn make_unlimited(&self) {
        self.lock().unlimited = true;
        self.changed.notify_all();
    }

    /// The receiver is gone: every waiting and future sender gets [`Acquired::Closed`].
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, CreditState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receiver's side: counts messages taken from the queue and says when to hand a batch
/// of credits back, so a steady stream costs one credit message per quarter of the queue.
///
/// It also keeps the sender's allowance — the credits given at the start or handed back and
/// not yet spent — so a sender that sends more than it was given is caught: that is a protocol
/// violation, not a full queue (the receiver's memory bound depends on it).
#[derive(Debug)]
pub(crate) struct CreditReturn {
    taken: u32,
    batch: u32,
    allowance: u64,
}

/// A sender sent a message without a credit for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overspent {
    /// How many messages arrived in the batch that overspent.
    pub(crate) arrived: usize,
    /// The credits the sender had before that batch.
    pub(crate) allowance: u64,
}

impl std::fmt::Display for Overspent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} messages with {} credits left: more than its credits allowed",
            self.arrived, self.allowance
        )
    }
}

impl CreditReturn {
    /// For a queue of `capacity` messages; the sender starts with `capacity` credits.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            taken: 0,
            batch: (capacity / 4).max(1),
            allowance: u64::from(capacity),
        }
    }

    /// Counts `count` messages that arrived, each spending one of the sender's credits; fails
    /// when the sender had fewer, and then the allowance is left as it was.
    pub(crate) fn received(&mut self, count: usize) -> Result<(), Overspent> {
        let spent = u64::try_from(count).unwrap_or(u64::MAX);
        match self.allowance.checked_sub(spent) {
            Some(left) => {
                self.allowance = left;
                Ok(())
            }
            None => Err(Overspent {
                arrived: count,
                allowance: self.allowance,
            }),
        }
    }

    /// Counts one message taken; returns the credits to hand back, if a batch is complete.
    /// The sender's allowance grows by them at once: it can only spend them once they
    /// arrived, so counting them early never blames an honest sender.
    pub(crate) fn took_one(&mut self) -> Option<u32> {
        self.taken = self.taken.saturating_add(1);
        let credits = (self.taken >= self.batch).then(|| std::mem::take(&mut self.taken))?;
        self.allowance = self.allowance.saturating_add(u64::from(credits));
        Some(credits)
    }

    /// Forgets the count, for a new sender (a restarted child) that starts with `allowance`
    /// credits.
    pub(crate) fn reset(&mut self, allowance: u32) {
        self.taken = 0;
        self.allowance = u64::from(allowance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn credits_run_out_and_come_back() {
        let credits = Credits::new(2);
        assert_eq!(credits.acquire(None), Acquired::Granted);
        assert_eq!(credits.acquire(None), Acquired::Granted);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(credits.acquire(Some(soon)), Acquired::Full);
        credits.grant(1);
        assert_eq!(credits.acquire(Some(Instant::now())), Acquired::Granted);
    }

    #[test]
    fn a_waiting_sender_wakes_on_grant_and_on_close() {
        let credits = Arc::new(Credits::new(0));
        let waiter = Arc::clone(&credits);
        let granted = std::thread::spawn(move || waiter.acquire(None));
        std::thread::sleep(Duration::from_millis(20));
        credits.grant(1);
        assert_eq!(granted.join().unwrap(), Acquired::Granted);
        let waiter = Arc::clone(&credits);
        let closed = std::thread::spawn(move || waiter.acquire(None));
        std::thread::sleep(Duration::from_millis(20));
        credits.close();
        assert_eq!(closed.join().unwrap(), Acquired::Closed);
    }

    #[test]
    fn unlimited_never_waits_and_reset_restores_the_count() {
        let credits = Credits::new(0);
        credits.make_unlimited();
        assert_eq!(credits.acquire(Some(Instant::now())), Acquired::Granted);
        credits.reset(1);
        assert_eq!(credits.acquire(Some(Instant::now())), Acquired::Granted);
        assert_eq!(credits.acquire(Some(Instant::now())), Acquired::Full);
    }

    #[test]
    fn credits_return_in_quarter_batches() {
        let mut returns = CreditReturn::new(8);
        assert_eq!(returns.took_one(), None);
        assert_eq!(returns.took_one(), Some(2));
        let mut single = CreditReturn::new(1);
        assert_eq!(single.took_one(), Some(1));
    }

    #[test]
    fn a_sender_within_its_credits_is_never_blamed() {
        let mut returns = CreditReturn::new(4);
        assert_eq!(returns.received(4), Ok(()));
        assert_eq!(returns.took_one(), Some(1));
        assert_eq!(returns.received(1), Ok(()));
        returns.reset(2);
        assert_eq!(returns.received(2), Ok(()));
    }

    #[test]
    fn a_sender_that_sends_more_than_its_credits_overspends() {
        let mut returns = CreditReturn::new(2);
        assert_eq!(returns.received(1), Ok(()));
        let overspent = returns.received(2).unwrap_err();
        assert_eq!(
            overspent,
            Overspent {
                arrived: 2,
                allowance: 1
            }
        );
        // The failed batch spent nothing: the one credit left still counts.
        assert_eq!(returns.received(1), Ok(()));
        assert!(returns.received(1).is_err());
        // Credits handed back are spendable; a restarted sender starts from its reset.
        returns.took_one();
        assert_eq!(returns.received(1), Ok(()));
        returns.reset(0);
        assert!(returns.received(1).is_err());
    }
}
