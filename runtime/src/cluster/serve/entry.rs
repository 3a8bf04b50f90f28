//! Running one entry on a host: the build and the map's caller are checked first, the items
//! go to the local pool, results are pushed as they come, and the last push acknowledges and
//! deletes the entry in the same transaction.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult};
use serde_bytes::ByteBuf;

use crate::cluster::keys::{JOB_REFRESH, JOB_TTL};
use crate::cluster::link::StreamEntry;
use crate::cluster::pool::claim::{self, Claimed};
use crate::cluster::pool::wire::{
    EntryBody, FIELD_BODY, FIELD_BUILD, FIELD_JOB, ResultBatch, WireError,
};
use crate::cluster::serve::Host;
use crate::pool::raw::{RawJob, RawNext};
use crate::protocol::pool::ItemFailure;

/// How long finished results wait to be pushed with the ones after them.
const PUSH_EVERY: Duration = Duration::from_millis(2);

/// Encoded results that are pushed at once, without waiting for more.
const PUSH_BYTES: usize = 1 << 20;

/// Pushes a result batch (`ARGV[1]`) to the map's list (`KEYS[2]`) with its TTL (`ARGV[2]`,
/// ms), only while the map's key (`KEYS[1]`) lives: a map that ended or lost its caller gets
/// no list made again behind it.
const PUSH_IF_ALIVE: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
     redis.call('RPUSH', KEYS[2], ARGV[1]) \
     redis.call('PEXPIRE', KEYS[2], ARGV[2]) end";

/// How long one wait for the local pool lasts.
const POOL_WAIT: Duration = Duration::from_millis(20);

/// How an entry reached this host.
pub(crate) enum Delivery {
    /// Read new from the group.
    Fresh,
    /// Claimed from `previous`, idle that long; delivered `deliveries` times with this one.
    Claimed {
        previous: String,
        idle: Duration,
        deliveries: u64,
    },
}

/// Results waiting to be pushed to a map's list.
struct Outbox {
    results: Vec<(u64, Result<ByteBuf, WireError>)>,
    bytes: usize,
    since: Instant,
}

/// Runs `entry` to its end; an error from the server leaves it unacknowledged (another
/// delivery runs it).
pub(crate) fn run(
    host: &Host,
    connection: &mut Connection,
    entry: &StreamEntry,
    delivery: &Delivery,
) -> RedisResult<()> {
    let job = String::from_utf8_lossy(entry.field(FIELD_JOB).unwrap_or_default()).into_owned();
    let build = entry.field(FIELD_BUILD).unwrap_or_default();
    if build != host.build.as_bytes() {
        host.met_foreign(&String::from_utf8_lossy(build));
        if !job_alive(host, connection, &job)? {
            // Its caller is gone: nobody will run it, or wait for it.
            return finish(host, connection, entry, &job, Vec::new());
        }
        // Acknowledged in this build's group only: the entry stays for its own build.
        return redis::cmd("XACK")
            .arg(host.keys.items())
            .arg(&host.group)
            .arg(&entry.id)
            .query(connection);
    }
    let body = entry.field(FIELD_BODY).map(EntryBody::decode);
    let Some(Ok(body)) = body else {
        host.warn(&format!(
            "entry {} has no readable body; it is dropped",
            entry.id
        ));
        return finish(host, connection, entry, &job, Vec::new());
    };
    if !job_alive(host, connection, &job)? {
        return finish(host, connection, entry, &job, Vec::new());
    }
    if let Delivery::Claimed {
        previous,
        idle,
        deliveries,
    } = delivery
    {
        if let Claimed::Fail(text) = claim::after_claim(*deliveries, body.attempts, previous, *idle)
        {
            let failed = body
                .items
                .iter()
                .map(|(index, _)| (*index, Err(WireError::Crashed(text.clone()))));
            return finish(host, connection, entry, &job, failed.collect());
        }
    }
    let task = match body.task.to_task() {
        Ok(task) => task,
        Err(detail) => {
            let failure = WireError::Failed(ItemFailure::UnknownTask(detail));
            let failed = body
                .items
                .iter()
                .map(|(index, _)| (*index, Err(failure.clone())));
            return finish(host, connection, entry, &job, failed.collect());
        }
    };
    let Some(raw) = RawJob::submit(&host.pool, task, body.timeout, body.lives) else {
        // The local pool is closing: the process is ending, and the entry goes to another.
        return Ok(());
    };
    raw.add(
        body.items
            .iter()
            .map(|(index, bytes)| (*index, bytes.as_slice())),
    );
    let left = body.items.iter().map(|(index, _)| *index).collect();
    collect(host, connection, entry, &job, &raw, left)
}

/// Pushes the local pool's outcomes as they come, until every item of the entry has one.
fn collect(
    host: &Host,
    connection: &mut Connection,
    entry: &StreamEntry,
    job: &str,
    raw: &RawJob,
    mut left: BTreeSet<u64>,
) -> RedisResult<()> {
    let mut outbox = Outbox {
        results: Vec::new(),
        bytes: 0,
        since: Instant::now(),
    };
    let mut next_check = Instant::now() + JOB_REFRESH;
    while !left.is_empty() {
        match raw.next(POOL_WAIT) {
            RawNext::Outcomes(outcomes) => {
                for (index, outcome) in outcomes {
                    if !left.remove(&index) {
                        continue;
                    }
                    let outcome = outcome
                        .map(|bytes| ByteBuf::from(bytes.to_vec()))
                        .map_err(|error| WireError::on_host(error, &host.id));
                    outbox.bytes += outcome.as_ref().map_or(64, |bytes| bytes.len() + 16);
                    outbox.results.push((index, outcome));
                }
            }
            RawNext::Idle => {}
            // The local pool is closing: the entry goes to another host.
            RawNext::Gone => return Ok(()),
        }
        let due = outbox.bytes >= PUSH_BYTES
            || (!outbox.results.is_empty() && outbox.since.elapsed() >= PUSH_EVERY);
        if !left.is_empty() && due {
            push(host, connection, job, &mut outbox)?;
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + JOB_REFRESH;
            if !job_alive(host, connection, job)? {
                // The map ended or its caller is gone: dropping `raw` cancels its items.
                return finish(host, connection, entry, job, Vec::new());
            }
        }
    }
    finish(host, connection, entry, job, outbox.results)
}

/// Whether the map's caller is still there (its job key lives).
fn job_alive(host: &Host, connection: &mut Connection, job: &str) -> RedisResult<bool> {
    redis::cmd("EXISTS")
        .arg(host.keys.job(job))
        .query::<i64>(connection)
        .map(|n| n > 0)
}

/// Pushes what the outbox holds.
fn push(
    host: &Host,
    connection: &mut Connection,
    job: &str,
    outbox: &mut Outbox,
) -> RedisResult<()> {
    let results = std::mem::take(&mut outbox.results);
    outbox.bytes = 0;
    outbox.since = Instant::now();
    let mut pipe = redis::pipe();
    add_push(&mut pipe, host, job, results);
    pipe.query(connection)
}

fn add_push(
    pipe: &mut redis::Pipeline,
    host: &Host,
    job: &str,
    results: Vec<(u64, Result<ByteBuf, WireError>)>,
) {
    if results.is_empty() {
        return;
    }
    let batch = ResultBatch {
        host: host.id.clone(),
        results,
    };
    let Ok(encoded) = batch.encode() else {
        host.warn("a batch of results could not be encoded");
        return;
    };
    let ttl = u64::try_from(JOB_TTL.as_millis()).unwrap_or(u64::MAX);
    pipe.cmd("EVAL")
        .arg(PUSH_IF_ALIVE)
        .arg(2)
        .arg(host.keys.job(job))
        .arg(host.keys.results(job))
        .arg(encoded)
        .arg(ttl)
        .ignore();
}

/// Pushes the last `results` (when the map still has a caller) and acknowledges and deletes
/// the entry, in one transaction: after it, the entry is done for every host.
fn finish(
    host: &Host,
    connection: &mut Connection,
    entry: &StreamEntry,
    job: &str,
    results: Vec<(u64, Result<ByteBuf, WireError>)>,
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    add_push(&mut pipe, host, job, results);
    pipe.cmd("XACK")
        .arg(host.keys.items())
        .arg(&host.group)
        .arg(&entry.id)
        .ignore()
        .cmd("XDEL")
        .arg(host.keys.items())
        .arg(&entry.id)
        .ignore();
    pipe.query(connection)
}
