//! Hooks for engines beside the pool's own, so that they reuse it instead of copying it:
//!
//! - [`Pool::with_engine`] makes a [`Pool`] whose map calls (every [`Maps`](crate::Maps) form,
//!   with its window, reordering, modifiers and handles) talk to another engine: the engine
//!   is a thread that receives the same [`Command`]s the dispatcher does and answers each job
//!   with [`JobEvent`]s. The cluster's caller side is one (`cluster/pool/`).
//! - [`RawJob`] submits already-encoded items with a task to a running local pool and
//!   receives their encoded outcomes: how a cluster host runs what it took from Redis.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use crate::pool::dispatcher::{Command, Event, JobEvent};
use crate::pool::items::ItemBatch;
pub(crate) use crate::pool::scheduler::{Item, ItemError, JobId, Outcome, Task};
pub(crate) use crate::pool::shared_bytes::SharedBytes;

use crate::completion::Completion;
use crate::error::Error;
use crate::pool::dispatcher::{WorkerPids, WorkerTallies};
use crate::pool::{Pool, PoolCore, RunningFlag};

/// What an engine thread receives: every event of its pool (only [`Event::Command`]s come).
pub(crate) type EngineEvents = Receiver<Event>;

/// The sizes a pool run by another engine reports to its map calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineShape {
    /// Workers the window counts (at least two items in flight per worker).
    pub(crate) workers: usize,
    /// Largest encoded item; a larger one fails with [`Error::TooLarge`].
    pub(crate) item_limit: usize,
    /// Most items of one map in flight.
    pub(crate) max_in_flight: usize,
}

impl Pool {
    /// A pool whose map calls are served by `engine`, run on a thread of its own named
    /// `name`: it receives every command and must answer each submitted job on the job's
    /// sender, and end once it received [`Command::Close`] and its jobs ended (or at
    /// [`Command::Terminate`]).
    pub(crate) fn with_engine(
        shape: EngineShape,
        name: &str,
        engine: impl FnOnce(EngineEvents) + Send + 'static,
    ) -> Result<Self, Error> {
        let (events_in, events) = crate::pool::turns::plain();
        let ended = Completion::new();
        let alive = RunningFlag(Arc::clone(&ended));
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _alive = alive;
                engine(events);
            })?;
        Ok(Self {
            core: Arc::new(PoolCore {
                events: events_in,
                next_job: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                admission: Mutex::new(()),
                workers: shape.workers.max(1),
                pids: WorkerPids::default(),
                item_limit: shape.item_limit,
                max_in_flight: shape.max_in_flight.max(1),
                dispatcher: Mutex::new(Some(handle)),
                dispatcher_ended: ended,
                tallies: WorkerTallies::default(),
                captured: None,
            }),
        })
    }
}

/// What [`RawJob::next`] found.
pub(crate) enum RawNext {
    /// Outcomes of some items, each with its index.
    Outcomes(Vec<Outcome>),
    /// Nothing within the wait.
    Idle,
    /// The pool ended the job (it was closed, terminated, or its dispatcher is gone).
    Gone,
}

/// A job of a local pool fed with encoded items; dropping it ends the job (items not started
/// never run, and workers still running its items are replaced).
pub(crate) struct RawJob {
    core: Arc<PoolCore>,
    id: JobId,
    events: Receiver<JobEvent>,
}

impl RawJob {
    /// Submits a job running `task` with a per-item `timeout` and `lives`; `None` when the
    /// pool is closed.
    pub(crate) fn submit(
        pool: &Pool,
        task: Task,
        timeout: Option<Duration>,
        lives: u32,
    ) -> Option<Self> {
        let (results, events) = mpsc::channel();
        let id = pool.core.next_job.fetch_add(1, Ordering::Relaxed);
        let admitted = pool.core.admit(Command::Submit {
            job: id,
            task,
            timeout,
            lives,
            results,
        });
        admitted.then(|| Self {
            core: Arc::clone(&pool.core),
            id,
            events,
        })
    }

    /// Adds encoded items, each with its index, in one shared buffer.
    pub(crate) fn add<'a>(&self, items: impl IntoIterator<Item = (u64, &'a [u8])>) {
        let mut batch = ItemBatch::default();
        for (index, bytes) in items {
            let appended = batch.push(index, |buffer| {
                buffer.extend_from_slice(bytes);
                Ok::<(), std::convert::Infallible>(())
            });
            let Ok(_) = appended;
        }
        let items = batch.finish();
        self.core.command(Command::Items {
            job: self.id,
            items,
        });
    }

    /// Waits at most `wait` for outcomes.
    pub(crate) fn next(&self, wait: Duration) -> RawNext {
        match self.events.recv_timeout(wait) {
            Ok(JobEvent::Results(outcomes)) => RawNext::Outcomes(outcomes),
            Ok(JobEvent::Frame(frame)) => {
                let mut outcomes = Vec::new();
                frame.each(|index, outcome| {
                    outcomes.push(match outcome {
                        Ok(bytes) => (index, Ok(frame.share(bytes))),
                        Err(failure) => (index, Err(ItemError::Failed(failure))),
                    });
                });
                RawNext::Outcomes(outcomes)
            }
            Ok(JobEvent::Cancelled) | Err(RecvTimeoutError::Disconnected) => RawNext::Gone,
            Err(RecvTimeoutError::Timeout) if self.core.dispatcher_running() => RawNext::Idle,
            Err(RecvTimeoutError::Timeout) => RawNext::Gone,
        }
    }
}

impl Drop for RawJob {
    fn drop(&mut self) {
        self.core.command(Command::End { job: self.id });
    }
}
