//! A process that runs as a pool item has no parent to report to; it reports to the worker
//! that runs it instead, so its one lives budget holds across workers: each life it spends
//! (a crash of the worker after that costs only what is left), the moment it starts
//! finishing (`onfinish` and `result` are not retried), and a hook's overrun with whether the
//! item may be tried again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::child::watchdog::{Overrun, ReportOverrun};

/// The worker's side of a pool item's reports.
pub(crate) trait ItemHost: Send + Sync {
    /// The item now counts `spent` lives as spent, earlier attempts included (once it is
    /// finishing, all but its last: a crash then is final, as for a child).
    fn lives_spent(&self, spent: u32);
    /// A hook overran. With `retry` the failure is retryable and the item has lives left: the
    /// worker ends as a crash would, and the pool runs the item again with one life less.
    /// Otherwise `overrun` is the item's final failure.
    fn overrun(&self, overrun: Overrun, retry: bool);
}

/// A pool item's lives, shared by its engine (which spends them) and its watchdog (which
/// decides whether an overrun may be retried).
#[derive(Clone)]
pub(crate) struct ItemLives {
    host: Arc<dyn ItemHost>,
    /// The type's whole budget.
    lives: u32,
    /// Lives left as far as a crash or an overrun is concerned.
    left: Arc<AtomicU32>,
}

impl ItemLives {
    /// The lives of an item whose type has `lives` and that spent `spent` of them already
    /// (in workers that crashed, or hooks that overran, on earlier attempts).
    pub(crate) fn new(host: Arc<dyn ItemHost>, lives: u32, spent: u32) -> Self {
        let left = lives.saturating_sub(spent).max(1);
        Self {
            host,
            lives,
            left: Arc::new(AtomicU32::new(left)),
        }
    }

    /// Lives left as this attempt begins, this one included.
    pub(crate) fn left(&self) -> u32 {
        self.left.load(Ordering::SeqCst)
    }

    /// The engine spent a life and goes on with `left`.
    pub(crate) fn spent(&self, left: u32) {
        self.left.store(left, Ordering::SeqCst);
        self.host.lives_spent(self.lives.saturating_sub(left));
    }

    /// Iterations are over: from now on nothing is retried.
    pub(crate) fn finishing(&self) {
        if self.left.swap(1, Ordering::SeqCst) > 1 {
            self.host.lives_spent(self.lives.saturating_sub(1));
        }
    }
}

impl ReportOverrun for ItemLives {
    fn report_overrun(&self, overrun: Overrun) {
        let retry = overrun.is_retryable() && self.left.load(Ordering::SeqCst) > 1;
        self.host.overrun(overrun, retry);
    }
}
