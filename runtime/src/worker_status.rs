//! [`WorkerStatus`]: what a worker measured about itself. Its own module, beside both kinds
//! of worker that report it ([`Pool`](crate::Pool) and [`WorkerResource`](crate::WorkerResource)),
//! so neither feature imports the other for it.

use std::time::Duration;

/// What a worker process measured about itself: how long it has run, how long it spent in
/// the function, how long it sat waiting for data, and how many items it ran. Given by
/// [`WorkerResource::status`](crate::WorkerResource::status) and
/// [`Pool::status`](crate::Pool::status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Time since the worker started.
    pub uptime: Duration,
    /// Time spent running the function (or, in a pool, running chunks of items).
    pub busy: Duration,
    /// Time spent waiting for data with nothing to run: the worker was starved.
    pub starved: Duration,
    /// Items run, whether they succeeded or failed.
    pub items: u64,
}

impl WorkerStatus {
    /// The share of its uptime the worker spent running the function, from 0 to 1.
    pub fn utilization(&self) -> f64 {
        if self.uptime.is_zero() {
            return 0.0;
        }
        (self.busy.as_secs_f64() / self.uptime.as_secs_f64()).min(1.0)
    }

    /// A status from its uptime, busy time and items; starved is the rest of the uptime.
    pub(crate) fn measured(uptime: Duration, busy: Duration, items: u64) -> Self {
        Self {
            uptime,
            busy,
            starved: uptime.saturating_sub(busy),
            items,
        }
    }
}
