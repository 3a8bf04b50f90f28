//! Worker hosts as the cluster sees them: each host writes a heartbeat key with a TTL
//! ([`HOST_TTL`](super::keys::HOST_TTL)) and its id in the sorted set of hosts; a host whose
//! key expired is gone. The heartbeat's text is plain (`v1 <build> <cores> <load> <ms> <pid>`)
//! so that hosts of any build and version can read each other's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Connection, RedisResult, Value};

use crate::cluster::keys::{HOST_TTL, Keys};
use crate::cluster::link;

/// A worker host of a cluster, as its last heartbeat described it
/// ([`Cluster::hosts`](super::Cluster::hosts)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostInfo {
    /// The host's id: its name, process id and a random suffix, unique in the cluster.
    pub id: String,
    /// Its build identity, in hex; only hosts of the caller's build run the caller's items.
    pub build: String,
    /// The workers of its local pool.
    pub cores: usize,
    /// Batches of items it was running at its last heartbeat.
    pub load: usize,
    /// When it wrote its last heartbeat, in milliseconds since the Unix epoch.
    pub last_heartbeat_ms: u64,
    /// Its process id on its machine.
    pub pid: u32,
}

impl HostInfo {
    /// When it wrote its last heartbeat.
    pub fn last_heartbeat(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_heartbeat_ms)
    }

    /// Whether it is the build of this process (so it can run this process's functions).
    pub fn is_same_build(&self) -> bool {
        self.build == link_build()
    }

    /// The heartbeat's text.
    pub(crate) fn encode(&self) -> String {
        format!(
            "v1 {} {} {} {} {}",
            self.build, self.cores, self.load, self.last_heartbeat_ms, self.pid
        )
    }

    /// The host `id` from its heartbeat's text; `None` when it does not read as one.
    pub(crate) fn decode(id: &str, text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        Some(Self {
            id: id.to_owned(),
            build: parts.next()?.to_owned(),
            cores: parts.next()?.parse().ok()?,
            load: parts.next()?.parse().ok()?,
            last_heartbeat_ms: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
        })
    }
}

/// This process's build identity, in hex.
pub(crate) fn link_build() -> String {
    crate::cluster::keys::build_hex(crate::pool::function::build_identity())
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `info` as its host's heartbeat: the key with its TTL and the host in the set.
pub(crate) fn beat(connection: &mut Connection, keys: &Keys, info: &HostInfo) -> RedisResult<()> {
    let ttl = u64::try_from(HOST_TTL.as_millis()).unwrap_or(u64::MAX);
    redis::pipe()
        .cmd("SET")
        .arg(keys.host(&info.id))
        .arg(info.encode())
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("ZADD")
        .arg(keys.hosts())
        .arg(info.last_heartbeat_ms)
        .arg(&info.id)
        .ignore()
        .query(connection)
}

/// The hosts alive now (their key has not expired), oldest heartbeat first; hosts whose key
/// expired are removed from the set on the way.
pub(crate) fn list(connection: &mut Connection, keys: &Keys) -> RedisResult<Vec<HostInfo>> {
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.hosts())
        .arg(0)
        .arg(-1)
        .query(connection)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut get = redis::cmd("MGET");
    for id in &ids {
        get.arg(keys.host(id));
    }
    let beats: Value = get.query(connection)?;
    let mut alive = Vec::new();
    let mut gone = Vec::new();
    for (id, beat) in ids.iter().zip(link::items(&beats)) {
        match link::text(beat).and_then(|text| HostInfo::decode(id, &text)) {
            Some(info) => alive.push(info),
            None => gone.push(id.as_str()),
        }
    }
    if !gone.is_empty() {
        redis::cmd("ZREM")
            .arg(keys.hosts())
            .arg(&gone)
            .query::<()>(connection)?;
    }
    Ok(alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_round_trips_through_its_text() {
        let info = HostInfo {
            id: "box-12-ab".into(),
            build: "00ff".into(),
            cores: 4,
            load: 2,
            last_heartbeat_ms: 1_700_000_000_123,
            pid: 12,
        };
        assert_eq!(HostInfo::decode("box-12-ab", &info.encode()), Some(info));
        assert_eq!(HostInfo::decode("x", "v2 00ff 4 2 1 12"), None);
        assert_eq!(HostInfo::decode("x", "v1 00ff four"), None);
    }
}
