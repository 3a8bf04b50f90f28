//! What [`Queue::stop`](crate::Queue::stop) waits for: one reader or a collection of them.

use std::time::{Duration, Instant};

use crate::parent::handle::Handle;
use crate::process::Process;
use crate::worker::Worker;

/// How long one wait of a worker without a deadline lasts before it waits again.
const LONG_WAIT: Duration = Duration::from_secs(3600);

/// Readers that [`Queue::stop`](crate::Queue::stop) ends and waits for: a process
/// [`Handle`], a worker, and slices, arrays, `Vec`s and references of them.
pub trait Readers {
    /// How many readers: `stop` appends one end for each.
    fn reader_count(&self) -> usize;

    /// Waits until every reader has ended or `deadline` passed (`None`: no limit); whether
    /// they all ended.
    fn wait_ended(&self, deadline: Option<Instant>) -> bool;
}

/// The time left until `deadline`; `None` for no deadline.
pub(crate) fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

impl<P: Process> Readers for Handle<P> {
    fn reader_count(&self) -> usize {
        1
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        self.wait_timeout(time_left(deadline).unwrap_or(Duration::MAX))
    }
}

impl<T> Readers for Worker<T> {
    fn reader_count(&self) -> usize {
        1
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        match time_left(deadline) {
            Some(left) => self.wait_timeout(left),
            None => loop {
                if self.wait_timeout(LONG_WAIT) {
                    return true;
                }
            },
        }
    }
}

impl<R: Readers> Readers for [R] {
    fn reader_count(&self) -> usize {
        self.iter().map(Readers::reader_count).sum()
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        // Every reader is waited for, even after one did not end in time.
        let mut all = true;
        for reader in self {
            all &= reader.wait_ended(deadline);
        }
        all
    }
}

impl<R: Readers, const N: usize> Readers for [R; N] {
    fn reader_count(&self) -> usize {
        self.as_slice().reader_count()
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        self.as_slice().wait_ended(deadline)
    }
}

impl<R: Readers> Readers for Vec<R> {
    fn reader_count(&self) -> usize {
        self.as_slice().reader_count()
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        self.as_slice().wait_ended(deadline)
    }
}

impl<R: Readers + ?Sized> Readers for &R {
    fn reader_count(&self) -> usize {
        (**self).reader_count()
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> bool {
        (**self).wait_ended(deadline)
    }
}
