//! Which pending entries a host takes over, and what a taken entry means: sans-IO, fed with
//! the rows of `XPENDING` by the host's heartbeat thread (`serve/heartbeat.rs`).
//!
//! A host touches the entries it runs at every heartbeat (`XCLAIM … JUSTID`, which resets
//! their idle time and not their delivery count), so an entry idle for the host TTL belongs
//! to a host that stopped — dead, cut off, or wedged — or was given up by its own host after
//! its link broke. Such an entry is claimed (`XCLAIM` with that idle time as its minimum, so
//! two hosts never both take it), which counts one more delivery; the delivery count is the
//! attempts budget, and an entry delivered more often than its budget is not run again: its
//! items fail, naming the host that last held it.

use std::time::Duration;

/// One row of `XPENDING`: an entry delivered and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) id: String,
    /// The consumer (host) it was last delivered to.
    pub(crate) consumer: String,
    /// Since its last delivery or touch.
    pub(crate) idle: Duration,
    /// How many times it was delivered.
    pub(crate) deliveries: u64,
}

/// The entries `me` claims: idle for at least `stale`, and not among those it runs now
/// (`running`). Its own entries count too: those it gave up after its link broke.
pub(crate) fn to_claim<'a>(
    pending: &'a [Pending],
    running: &dyn Fn(&str) -> bool,
    stale: Duration,
) -> Vec<&'a Pending> {
    pending
        .iter()
        .filter(|row| row.idle >= stale && !running(&row.id))
        .collect()
}

/// What a host does with an entry it claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// Run it again.
    Run,
    /// Its attempts are spent: its items fail with this text.
    Fail(String),
}

/// What a claimed entry, now delivered `deliveries` times, with a budget of `attempts`
/// deliveries, last held by `previous` for `idle` without a sign, comes to.
pub(crate) fn after_claim(
    deliveries: u64,
    attempts: u32,
    previous: &str,
    idle: Duration,
) -> Claimed {
    if deliveries <= u64::from(attempts) {
        return Claimed::Run;
    }
    Claimed::Fail(format!(
        "host {previous} stopped while running this item (no sign of it for {} ms); the item's {attempts} attempts are spent",
        idle.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, consumer: &str, idle_ms: u64, deliveries: u64) -> Pending {
        Pending {
            id: id.into(),
            consumer: consumer.into(),
            idle: Duration::from_millis(idle_ms),
            deliveries,
        }
    }

    #[test]
    fn only_stale_entries_not_running_here_are_claimed() {
        let rows = [
            row("1-0", "dead", 5000, 1),
            row("2-0", "alive", 100, 1),
            row("3-0", "me", 5000, 1),
            row("4-0", "me", 5000, 1),
        ];
        let running = |id: &str| id == "4-0";
        let claimed: Vec<&str> = to_claim(&rows, &running, Duration::from_secs(3))
            .into_iter()
            .map(|row| row.id.as_str())
            .collect();
        assert_eq!(claimed, ["1-0", "3-0"]);
    }

    #[test]
    fn the_delivery_count_is_the_attempts_budget() {
        let idle = Duration::from_secs(4);
        assert_eq!(after_claim(2, 3, "h1", idle), Claimed::Run);
        assert_eq!(after_claim(3, 3, "h1", idle), Claimed::Run);
        let Claimed::Fail(text) = after_claim(4, 3, "h1", idle) else {
            panic!("past the budget");
        };
        assert!(text.contains("host h1"), "{text}");
        assert!(text.contains("3 attempts"), "{text}");
        assert!(matches!(after_claim(2, 1, "h", idle), Claimed::Fail(_)));
    }
}
