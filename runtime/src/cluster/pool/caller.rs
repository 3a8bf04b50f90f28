//! The engine behind a cluster pool, on the caller's side: a thread that receives the map
//! calls' commands (the same ones a local pool's dispatcher receives) and turns them into
//! Redis: a job key at submit, stream entries for items, a stop to the job's collector at
//! the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Connection;
use serde_bytes::ByteBuf;

use crate::cluster::Cluster;
use crate::cluster::keys::JOB_TTL;
use crate::cluster::link::COMMAND_TIMEOUT;
use crate::cluster::pool::collector::Collector;
use crate::cluster::pool::results::Collecting;
use crate::cluster::pool::wire::{EntryBody, FIELD_BODY, FIELD_BUILD, FIELD_JOB, WireTask};
use crate::error::Error;
use crate::pool::raw::{Command, EngineEvents, Event, Item, ItemError, JobEvent, JobId};

/// Most items in one stream entry.
const MAX_ENTRY_ITEMS: usize = 256;

/// How many entries per worker a batch of items is cut into at least, so that hosts share
/// it and a slow entry at the end holds little back.
const ENTRIES_PER_WORKER: usize = 4;

/// The items of one entry when a batch of `items` goes to `workers` workers.
pub(crate) fn entry_size(items: usize, workers: usize) -> usize {
    items
        .div_ceil(ENTRIES_PER_WORKER.saturating_mul(workers.max(1)))
        .clamp(1, MAX_ENTRY_ITEMS)
}

/// One map as the engine knows it.
struct JobLink {
    /// The job's id in Redis keys: the caller's id and the job's number.
    name: String,
    task: WireTask,
    timeout: Option<Duration>,
    lives: u32,
    results: Sender<JobEvent>,
    collector: Arc<Mutex<Collector>>,
    stop: Arc<AtomicBool>,
    /// Ids of the entries added for it, deleted when it ends (a host deletes each entry it
    /// finishes; these are the ones no host finished).
    entries: Vec<String>,
}

/// The engine thread's state.
pub(crate) struct Engine {
    cluster: Cluster,
    build: String,
    /// This pool's id, drawn at random: job keys of different callers never meet.
    caller: String,
    workers: usize,
    connection: Option<Connection>,
    jobs: BTreeMap<JobId, JobLink>,
    closing: bool,
}

impl Engine {
    pub(crate) fn new(cluster: Cluster, build: String, workers: usize) -> Self {
        let mut random = [0u8; 8];
        // Without randomness two callers could share job keys; the pid keeps them apart on
        // one machine at least.
        let caller = match getrandom::fill(&mut random) {
            Ok(()) => crate::cluster::keys::build_hex(&random),
            Err(_) => format!("pid{}", std::process::id()),
        };
        Self {
            cluster,
            build,
            caller,
            workers,
            connection: None,
            jobs: BTreeMap::new(),
            closing: false,
        }
    }

    /// Serves commands until the pool closed and its jobs ended, or it was terminated.
    pub(crate) fn run(mut self, events: &EngineEvents) {
        while let Ok(event) = events.recv() {
            if let Event::Command(command) = event {
                if !self.command(command) {
                    break;
                }
            }
            if self.closing && self.jobs.is_empty() {
                break;
            }
        }
        for (_, job) in std::mem::take(&mut self.jobs) {
            job.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Carries out one command; `false` when the engine must end now.
    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Submit {
                job,
                task,
                timeout,
                lives,
                results,
            } => self.submit(job, WireTask::from_task(task), timeout, lives, results),
            Command::Items { job, items } => self.items(job, &items.into_items()),
            Command::End { job } => {
                if let Some(link) = self.jobs.remove(&job) {
                    link.stop.store(true, Ordering::SeqCst);
                    self.delete_entries(&link.entries);
                }
            }
            Command::Close => self.closing = true,
            Command::Terminate => {
                for (_, job) in std::mem::take(&mut self.jobs) {
                    fail(&job, &ItemError::Terminated, None);
                    job.stop.store(true, Ordering::SeqCst);
                }
                return false;
            }
        }
        true
    }

    fn submit(
        &mut self,
        job: JobId,
        task: WireTask,
        timeout: Option<Duration>,
        lives: u32,
        results: Sender<JobEvent>,
    ) {
        let name = format!("{}-{job}", self.caller);
        let config = self.cluster.config();
        let collector = Arc::new(Mutex::new(Collector::new(
            config.no_host_timeout,
            config.server_timeout,
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let key = self.cluster.keys().job(&name);
        let ttl = JOB_TTL.as_secs();
        // A failure here shows at the first items (their entries cannot be added either) or
        // in the collector, which finds the job key missing.
        let _ = self.query(|c, build| {
            redis::cmd("SET")
                .arg(&key)
                .arg(build)
                .arg("EX")
                .arg(ttl)
                .query::<()>(c)
        });
        let collecting = Collecting {
            cluster: self.cluster.clone(),
            name: name.clone(),
            build: self.build.clone(),
            collector: Arc::clone(&collector),
            stop: Arc::clone(&stop),
            results: results.clone(),
            others: Mutex::new(Vec::new()),
        };
        let spawned = std::thread::Builder::new()
            .name("skprocess-cluster-results".into())
            .spawn(move || collecting.run());
        let link = JobLink {
            name,
            task,
            timeout,
            lives,
            results,
            collector,
            stop,
            entries: Vec::new(),
        };
        if let Err(e) = spawned {
            // Without a collector no outcome would ever come back: its items fail at once.
            fail(
                &link,
                &ItemError::Cluster(format!("no collector thread: {e}")),
                None,
            );
        }
        self.jobs.insert(job, link);
    }

    /// Adds `items` to the stream as entries of the job; items that cannot be added fail.
    fn items(&mut self, job: JobId, items: &[Item]) {
        let Some(link) = self.jobs.get(&job) else {
            return;
        };
        lock(&link.collector).sent(items.iter().map(|item| item.index));
        let size = entry_size(items.len(), self.workers);
        let stream = self.cluster.keys().items();
        let attempts = self.cluster.config().attempts;
        let mut pipe = redis::pipe();
        for chunk in items.chunks(size) {
            let body = EntryBody {
                task: link.task.clone(),
                timeout: link.timeout,
                lives: link.lives,
                attempts,
                items: chunk
                    .iter()
                    .map(|item| (item.index, ByteBuf::from(item.bytes.to_vec())))
                    .collect(),
            };
            let Ok(body) = body.encode() else {
                let indices = chunk.iter().map(|item| item.index).collect::<Vec<_>>();
                let error = ItemError::Cluster("an entry of items could not be encoded".into());
                fail(link, &error, Some(&indices));
                continue;
            };
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(FIELD_BUILD)
                .arg(&self.build)
                .arg(FIELD_JOB)
                .arg(&link.name)
                .arg(FIELD_BODY)
                .arg(body);
        }
        let added = self.query(|c, _| pipe.query::<Vec<String>>(c));
        match (added, self.jobs.get_mut(&job)) {
            (Ok(ids), Some(link)) => link.entries.extend(ids),
            (Err(error), Some(link)) => {
                let indices = items.iter().map(|item| item.index).collect::<Vec<_>>();
                fail(link, &ItemError::Cluster(error.to_string()), Some(&indices));
            }
            (_, None) => {}
        }
    }

    /// Deletes a finished job's entries that no host finished (items of a map left early,
    /// or that no host of this build took): best effort, since a host reading one later
    /// finds the job's key gone and deletes it too.
    fn delete_entries(&mut self, ids: &[String]) {
        let stream = self.cluster.keys().items();
        for chunk in ids.chunks(1024) {
            let _ = self.query(|c, _| redis::cmd("XDEL").arg(&stream).arg(chunk).query::<()>(c));
        }
    }

    /// Runs `command` on the engine's connection; after a failure it connects again and
    /// tries once more (a server restarted between maps costs nothing).
    fn query<T>(
        &mut self,
        mut command: impl FnMut(&mut Connection, &str) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let server = self.cluster.server().clone();
        for attempt in 0..2 {
            let connection = match self.connection.as_mut() {
                Some(connection) => connection,
                None => self.connection.insert(server.connect(COMMAND_TIMEOUT)?),
            };
            match command(connection, &self.build) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    self.connection = None;
                    if attempt == 1 || !(e.is_io_error() || e.is_connection_dropped()) {
                        return Err(server.error(&e));
                    }
                }
            }
        }
        Err(Error::Cluster {
            problem: "unreachable".into(),
        })
    }
}

fn lock(collector: &Mutex<Collector>) -> std::sync::MutexGuard<'_, Collector> {
    collector.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails the job's outstanding items among `indices` (all of them when `None`) with
/// `error`, telling the map.
fn fail(link: &JobLink, error: &ItemError, indices: Option<&[u64]>) {
    let failed: Vec<u64> = {
        let mut collector = lock(&link.collector);
        match indices {
            None => collector.fail_all(),
            Some(indices) => indices
                .iter()
                .copied()
                .filter(|index| collector.accept(*index))
                .collect(),
        }
    };
    if !failed.is_empty() {
        let outcomes = failed
            .into_iter()
            .map(|index| (index, Err(error.clone())))
            .collect();
        let _ = link.results.send(JobEvent::Results(outcomes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_so_every_worker_gets_several_entries() {
        assert_eq!(entry_size(1024, 2), 128);
        assert_eq!(entry_size(200, 2), 25);
        assert_eq!(entry_size(3, 8), 1);
        assert_eq!(entry_size(100_000, 1), MAX_ENTRY_ITEMS);
        assert_eq!(entry_size(0, 0), 1);
    }
}
