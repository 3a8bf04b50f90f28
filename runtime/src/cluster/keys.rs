//! The key layout of a cluster named `N` on its Redis server, and how long each key lives.
//! Everything a cluster writes starts with `skp:N:`, so two clusters (two names) share a
//! server without meeting, and `redis-cli --scan --pattern 'skp:N:*'` shows one cluster.
//!
//! | key | type | written by | lives |
//! |---|---|---|---|
//! | `skp:N:items` | stream: one entry per batch of items (fields `build`, `job`, `body`) | callers (`XADD`) | entries are deleted by the host that finished them (`XACK` + `XDEL`); a consumer group per build, `build:<hex>` |
//! | `skp:N:hosts` | sorted set: host id → last heartbeat (Unix ms) | hosts (`ZADD`) | members whose host key expired are removed by whoever lists the hosts |
//! | `skp:N:host:<host>` | string: the host's [`HostInfo`](super::HostInfo), encoded | the host, every [`HEARTBEAT`] | [`HOST_TTL`] after the last heartbeat |
//! | `skp:N:job:<job>` | string: the caller's build | the caller, refreshed every [`JOB_REFRESH`] | [`JOB_TTL`] after the caller's last refresh; deleted when the map ends |
//! | `skp:N:job:<job>:out` | list of result batches (`RPUSH`) | hosts | [`JOB_TTL`] after the last push; deleted when the map ends |
//!
//! | `skp:N:share:<share>` | string: the shared type's name | the creating process, refreshed every [`JOB_REFRESH`] | [`SHARE_TTL`] after its creator's last refresh; deleted with its last handle there |
//! | `skp:N:share:<share>:f:<field>` | one field: integers and floats as decimal text, strings as text, sequences as lists, maps as hashes, sets as sets, anything else as its encoding | every handle | like the share's key (refreshed with it) |
//! | `skp:N:share:<share>:error` | string: the share's last failure | every handle | like the share's key |
//!
//! | `skp:N:queue:<queue>` | stream: one entry per message (field `m`: the encoded message) or end (field `end`); one consumer group, `readers`, and a consumer per reading process | every handle: puts (`XADD` by a script that checks the capacity), reads (`XREADGROUP`), acknowledgements (`XACK` + `XDEL`) | [`QUEUE_TTL`] after the last put or read (with what it holds); a message is deleted once acknowledged |
//!
//! A caller that dies leaves its job keys for [`JOB_TTL`] at most; its entries still in the
//! stream are acknowledged and deleted unrun by the first host that reads them (their job key
//! is gone). A host that dies leaves its host key for [`HOST_TTL`]; its pending entries are
//! claimed by the others once idle that long. The stream and the sorted set are the cluster's
//! own and stay; both are empty when nothing runs. A queue's reader that dies leaves its
//! message pending: its process touches the messages it holds every [`HEARTBEAT`] (with an
//! unlimited lease), so one idle for [`HOST_TTL`] (or for the queue's lease, when it has one)
//! belongs to a reader that stopped and is claimed by the next read of another.

use std::time::Duration;

/// How often a host writes its heartbeat and touches the entries it holds.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a host key lives after its last heartbeat; an entry its host has not touched for
/// this long is claimed by another host.
pub const HOST_TTL: Duration = Duration::from_secs(3);

/// How long a map's keys outlive the last sign of their caller.
pub const JOB_TTL: Duration = Duration::from_secs(30);

/// How long a share's keys outlive the last refresh by the process that created it.
pub const SHARE_TTL: Duration = Duration::from_secs(30);

/// How long a queue's stream outlives its last put or read, with the messages it holds.
pub const QUEUE_TTL: Duration = Duration::from_secs(3600);

/// How often a caller refreshes its job key.
pub const JOB_REFRESH: Duration = Duration::from_secs(1);

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of the cluster named `name` (checked by [`check_name`]).
    pub(crate) fn new(name: &str) -> Self {
        Self {
            prefix: format!("skp:{name}:"),
        }
    }

    /// The stream of item batches.
    pub(crate) fn items(&self) -> String {
        format!("{}items", self.prefix)
    }

    /// The sorted set of host ids by last heartbeat.
    pub(crate) fn hosts(&self) -> String {
        format!("{}hosts", self.prefix)
    }

    /// One host's heartbeat key.
    pub(crate) fn host(&self, host: &str) -> String {
        format!("{}host:{host}", self.prefix)
    }

    /// One map's liveness key.
    pub(crate) fn job(&self, job: &str) -> String {
        format!("{}job:{job}", self.prefix)
    }

    /// One map's list of result batches.
    pub(crate) fn results(&self, job: &str) -> String {
        format!("{}job:{job}:out", self.prefix)
    }
}

impl Keys {
    /// One share's key (its type's name; the share exists while it does).
    pub(crate) fn share(&self, share: &str) -> String {
        format!("{}share:{share}", self.prefix)
    }

    /// One field of a share.
    pub(crate) fn share_field(&self, share: &str, field: &str) -> String {
        format!("{}share:{share}:f:{field}", self.prefix)
    }

    /// A share's last failure.
    pub(crate) fn share_error(&self, share: &str) -> String {
        format!("{}share:{share}:error", self.prefix)
    }

    /// One queue's stream.
    pub(crate) fn queue(&self, queue: &str) -> String {
        format!("{}queue:{queue}", self.prefix)
    }
}

/// The consumer group of a queue's readers: one group, so each message goes to one reader.
pub(crate) const QUEUE_GROUP: &str = "readers";

/// The consumer group of the hosts of one build: each build reads the stream through its own
/// group, so a host of another build never takes an entry from the hosts that can run it.
pub(crate) fn group(build: &str) -> String {
    format!("build:{build}")
}

/// A build identity as key text.
pub(crate) fn build_hex(identity: &[u8]) -> String {
    identity.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `name` can name a cluster (and a host): 1 to 64 ASCII letters, digits, `-`, `_`
/// or `.`, so it never splits a key or needs quoting.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a cluster name: use 1 to 64 ASCII letters, digits, `-`, `_` or `.`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_cluster_starts_with_its_prefix() {
        let keys = Keys::new("thumbs");
        for key in [
            keys.items(),
            keys.hosts(),
            keys.host("h1"),
            keys.job("j1"),
            keys.results("j1"),
            keys.share("s1"),
            keys.share_field("s1", "counter"),
            keys.share_error("s1"),
            keys.queue("q1"),
        ] {
            assert!(key.starts_with("skp:thumbs:"), "{key}");
        }
        assert_eq!(keys.results("j1"), "skp:thumbs:job:j1:out");
    }

    #[test]
    fn names_that_would_split_a_key_are_refused() {
        for bad in ["", "a:b", "a b", "a{b}", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["thumbnails", "a-b_c.d", "X9"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn build_hex_is_lowercase_hex() {
        assert_eq!(build_hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
