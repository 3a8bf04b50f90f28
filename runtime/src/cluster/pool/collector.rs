//! Which results of a cluster map count, and when its outstanding items fail: sans-IO, fed
//! with plain values by the job's collector thread (`caller.rs`).
//!
//! An entry can run more than once — a host that was only slow, or cut off, finishes what
//! another host claimed — so the first outcome of each index counts and the later ones are
//! dropped: the map sees every item exactly once. Items fail when no host of the caller's
//! build has been alive for the no-host limit, when the server has been unreachable for the
//! server limit, or at once when the server lost the map (its job key vanished).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One map's outstanding items and the clocks that can fail them.
#[derive(Debug)]
pub(crate) struct Collector {
    outstanding: BTreeSet<u64>,
    no_host_limit: Duration,
    server_limit: Duration,
    /// Since when no host of this build was seen alive while items were outstanding.
    no_host_since: Option<Instant>,
    /// Since when the server has failed every command.
    unreachable_since: Option<Instant>,
}

/// Why the outstanding items fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No host of this build was alive for the no-host limit.
    NoHost(Duration),
    /// The server could not be reached for the server limit; the last error.
    Unreachable(String),
    /// The server no longer holds the map (it restarted, or its keys were deleted).
    Lost,
}

impl Collector {
    pub(crate) fn new(no_host_limit: Duration, server_limit: Duration) -> Self {
        Self {
            outstanding: BTreeSet::new(),
            no_host_limit,
            server_limit,
            no_host_since: None,
            unreachable_since: None,
        }
    }

    /// Items sent; their outcomes are awaited.
    pub(crate) fn sent(&mut self, indices: impl IntoIterator<Item = u64>) {
        self.outstanding.extend(indices);
    }

    /// Whether the outcome of `index` counts (the first one since it was sent).
    pub(crate) fn accept(&mut self, index: u64) -> bool {
        self.outstanding.remove(&index)
    }

    /// Items whose outcome is awaited.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Takes every outstanding item: they fail now.
    pub(crate) fn fail_all(&mut self) -> Vec<u64> {
        self.no_host_since = None;
        self.unreachable_since = None;
        std::mem::take(&mut self.outstanding).into_iter().collect()
    }

    /// The server answered.
    pub(crate) fn server_answered(&mut self) {
        self.unreachable_since = None;
    }

    /// A command to the server failed at `now` with `error`.
    pub(crate) fn server_failed(&mut self, now: Instant, error: String) -> Option<Verdict> {
        let since = *self.unreachable_since.get_or_insert(now);
        (self.outstanding() > 0 && now.saturating_duration_since(since) >= self.server_limit)
            .then_some(Verdict::Unreachable(error))
    }

    /// The hosts of this build alive at `now`.
    pub(crate) fn hosts_seen(&mut self, now: Instant, alive: usize) -> Option<Verdict> {
        if alive > 0 || self.outstanding() == 0 {
            self.no_host_since = None;
            return None;
        }
        let since = *self.no_host_since.get_or_insert(now);
        (now.saturating_duration_since(since) >= self.no_host_limit)
            .then_some(Verdict::NoHost(self.no_host_limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn collector() -> Collector {
        Collector::new(10 * S, 5 * S)
    }

    #[test]
    fn the_first_outcome_of_each_index_counts_once() {
        let mut c = collector();
        c.sent(0..4);
        assert!(c.accept(2));
        assert!(!c.accept(2), "a second run's outcome is dropped");
        assert!(!c.accept(9), "never sent");
        assert_eq!(c.outstanding(), 3);
        assert_eq!(c.fail_all(), [0, 1, 3]);
        assert!(!c.accept(0), "a late outcome after the failure is dropped");
    }

    #[test]
    fn no_host_fails_only_after_the_limit_and_only_with_items_out() {
        let t = Instant::now();
        let mut c = collector();
        assert_eq!(c.hosts_seen(t, 0), None);
        assert_eq!(c.hosts_seen(t + 20 * S, 0), None, "nothing outstanding");
        c.sent([0]);
        assert_eq!(c.hosts_seen(t + 21 * S, 0), None, "the clock starts now");
        assert_eq!(c.hosts_seen(t + 30 * S, 0), None);
        assert_eq!(
            c.hosts_seen(t + 30 * S, 1),
            None,
            "a host came: the clock stops"
        );
        assert_eq!(c.hosts_seen(t + 35 * S, 0), None);
        assert_eq!(c.hosts_seen(t + 45 * S, 0), Some(Verdict::NoHost(10 * S)));
    }

    #[test]
    fn an_unreachable_server_fails_items_after_its_limit_unless_it_answers() {
        let t = Instant::now();
        let mut c = collector();
        c.sent([0, 1]);
        assert_eq!(c.server_failed(t, "refused".into()), None);
        assert_eq!(c.server_failed(t + 4 * S, "refused".into()), None);
        c.server_answered();
        assert_eq!(c.server_failed(t + 6 * S, "refused".into()), None);
        assert_eq!(
            c.server_failed(t + 11 * S, "reset".into()),
            Some(Verdict::Unreachable("reset".into()))
        );
    }
}
