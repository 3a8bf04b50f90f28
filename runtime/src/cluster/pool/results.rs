//! A map's collector thread: pops the result batches hosts push to the map's list, hands the
//! first outcome of each item to the map, keeps the map's key alive, and fails the items no
//! host can run any more (the decisions are `collector.rs`'s). At the map's end it deletes
//! the map's keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use crate::cluster::keys::{JOB_REFRESH, JOB_TTL};
use crate::cluster::link::{self, COMMAND_TIMEOUT};
use crate::cluster::pool::collector::{Collector, Verdict};
use crate::cluster::pool::wire::{ResultBatch, WireError};
use crate::cluster::{Cluster, hosts};
use crate::error::Error;
use crate::pool::raw::{ItemError, JobEvent, Outcome, SharedBytes};

/// How long one pop waits for a batch, so that an end is seen soon.
const POP_WAIT: &str = "0.25";

/// Pause after a failed command before the next try.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What a map's collector thread holds.
pub(crate) struct Collecting {
    pub(crate) cluster: Cluster,
    pub(crate) name: String,
    pub(crate) build: String,
    pub(crate) collector: Arc<Mutex<Collector>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) results: Sender<JobEvent>,
    /// Hosts of other builds seen at the last check, named when no host of this build is.
    pub(crate) others: Mutex<Vec<String>>,
}

impl Collecting {
    /// Collects until the map ends, then deletes its keys.
    pub(crate) fn run(self) {
        let mut connection = None;
        let mut next_check = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let turn = self.turn(&mut connection, &mut next_check);
            let outcomes = match turn {
                Ok(outcomes) => {
                    self.lock().server_answered();
                    outcomes
                }
                Err(error) => {
                    connection = None;
                    let verdict = self.lock().server_failed(Instant::now(), error.to_string());
                    std::thread::sleep(RETRY_PAUSE);
                    verdict.map(|v| self.fail_all(&v)).unwrap_or_default()
                }
            };
            if !outcomes.is_empty() && self.results.send(JobEvent::Results(outcomes)).is_err() {
                break;
            }
        }
        self.clean_up(connection);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collector> {
        self.collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One pop, and the periodic checks when due; the outcomes that count.
    fn turn(
        &self,
        connection: &mut Option<Connection>,
        next_check: &mut Instant,
    ) -> Result<Vec<Outcome>, Error> {
        let server = self.cluster.server();
        let connection = match connection {
            Some(connection) => connection,
            None => connection.insert(server.connect(COMMAND_TIMEOUT)?),
        };
        let mut outcomes = Vec::new();
        if Instant::now() >= *next_check {
            *next_check = Instant::now() + JOB_REFRESH;
            if let Some(verdict) = self.check(connection).map_err(|e| server.error(&e))? {
                outcomes = self.fail_all(&verdict);
            }
        }
        let popped: Value = redis::cmd("BLPOP")
            .arg(self.cluster.keys().results(&self.name))
            .arg(POP_WAIT)
            .query(connection)
            .map_err(|e| server.error(&e))?;
        if let [_, batch] = link::items(&popped) {
            let batch = link::bytes(batch).and_then(|b| ResultBatch::decode(&b).ok());
            outcomes.extend(batch.map(|b| self.accept(b)).unwrap_or_default());
        }
        Ok(outcomes)
    }

    /// Keeps the map's key alive (or finds the server lost it, and makes it again), and
    /// looks for hosts of this build while items are outstanding.
    fn check(&self, connection: &mut Connection) -> redis::RedisResult<Option<Verdict>> {
        let key = self.cluster.keys().job(&self.name);
        let ttl = JOB_TTL.as_secs();
        let kept: i64 = redis::cmd("EXPIRE").arg(&key).arg(ttl).query(connection)?;
        if kept == 0 {
            redis::cmd("SET")
                .arg(&key)
                .arg(&self.build)
                .arg("EX")
                .arg(ttl)
                .query::<()>(connection)?;
            return Ok((self.lock().outstanding() > 0).then_some(Verdict::Lost));
        }
        if self.lock().outstanding() == 0 {
            return Ok(None);
        }
        let (same, others): (Vec<_>, Vec<_>) = hosts::list(connection, self.cluster.keys())?
            .into_iter()
            .partition(|host| host.build == self.build);
        *self.others.lock().unwrap_or_else(PoisonError::into_inner) = others
            .into_iter()
            .map(|host| format!("{} (build {})", host.id, host.build))
            .collect();
        Ok(self.lock().hosts_seen(Instant::now(), same.len()))
    }

    /// The outcomes of `batch` that count.
    fn accept(&self, batch: ResultBatch) -> Vec<Outcome> {
        let mut collector = self.lock();
        batch
            .results
            .into_iter()
            .filter(|(index, _)| collector.accept(*index))
            .map(|(index, outcome)| {
                let outcome = outcome
                    .map(|bytes| SharedBytes::from(bytes.into_vec()))
                    .map_err(WireError::into_item_error);
                (index, outcome)
            })
            .collect()
    }

    /// Every outstanding item fails for `verdict`.
    fn fail_all(&self, verdict: &Verdict) -> Vec<Outcome> {
        let server = self.cluster.server().address();
        let cluster = self.cluster.name();
        let error = match verdict {
            Verdict::NoHost(limit) => {
                let others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
                let others = match others.is_empty() {
                    true => String::new(),
                    false => format!("; hosts of other builds: {}", others.join(", ")),
                };
                ItemError::NoWorker(format!(
                    "no host of this build ({}) served cluster {cluster} for {limit:?} (start one with SKPROCESS_SERVE){others}",
                    self.build
                ))
            }
            Verdict::Unreachable(error) => ItemError::Cluster(error.clone()),
            Verdict::Lost => ItemError::Cluster(format!(
                "the redis server at {server} no longer holds this map (restarted or flushed); its items in flight are lost"
            )),
        };
        self.lock()
            .fail_all()
            .into_iter()
            .map(|index| (index, Err(error.clone())))
            .collect()
    }

    /// Deletes the map's keys (best effort: they expire anyway).
    fn clean_up(&self, connection: Option<Connection>) {
        let connection = match connection {
            Some(connection) => Some(connection),
            None => self.cluster.server().connect(COMMAND_TIMEOUT).ok(),
        };
        if let Some(mut connection) = connection {
            let keys = self.cluster.keys();
            let _ = redis::cmd("DEL")
                .arg(keys.job(&self.name))
                .arg(keys.results(&self.name))
                .query::<()>(&mut connection);
        }
    }
}
