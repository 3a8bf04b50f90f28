//! The pool: persistent worker processes that map plain functions and `#[skprocess]` types
//! over items, in adaptive chunks, and never hang when a worker dies.
//!
//! How the parts fit:
//!
//! - [`Pool`] (here) starts the workers and the dispatcher thread; [`Maps`] (`maps.rs`) is the
//!   builder behind every map call, with its modifiers; a map call is a *job* whose input is
//!   pulled lazily and encoded on the caller's thread (`job.rs`), with a bounded number of
//!   items in flight.
//! - `items.rs` keeps items as the caller encoded them, in batches already in the form a
//!   chunk carries them: a job's queue and a worker's items in flight hold runs of those
//!   batches, so a chunk is cut and written as a range of bytes, not item by item.
//! - `dispatcher.rs` owns the workers and the sans-IO `scheduler.rs`, which decides chunks,
//!   requeues, retries and timeouts, and with `rebalance.rs` takes back what a worker holds
//!   and has not started when another runs dry; `launch.rs` starts worker processes and reads
//!   their reports, `writer.rs` writes their chunks; `threads.rs` is the same with threads
//!   ([`Pool::threads`]).
//! - `worker.rs` is the child side, `outbox.rs` its results and reports, `inbox.rs` its
//!   queue of chunks (shared with thread
//!   workers), where a release is decided item by item; `in_hand.rs` the page in which a
//!   worker process keeps the ordinal of the item it holds, read by the parent when the
//!   worker dies, so a crash is pinned without a message per item; `function.rs` turns a function type
//!   into a code address that only the same build accepts.
//! - `raw.rs` holds the hooks other engines use: a pool whose maps another engine serves, and
//!   a job fed with encoded items (the cluster's caller and host sides).

mod blocks;
mod dispatcher;
pub(crate) mod function;
mod in_hand;
mod inbox;
mod items;
mod job;
pub(crate) mod launch;
mod maps;
mod outbox;
mod progress;
#[cfg(feature = "cluster")]
pub(crate) mod raw;
mod results;
mod scheduler;
mod shared_bytes;
mod threads;
mod turns;
pub(crate) mod worker;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::completion::Completion;
use crate::config::ChildSetup;
use crate::error::Error;
use crate::parent::output::{CapturedOutput, Sink};
use crate::protocol::pool::RESULT_OVERHEAD;
use dispatcher::{Command, Dispatcher, Event, EventSender, Launcher, WorkerPids, WorkerTallies};

pub use function::Mode;
pub use function::{Plain, Star};
pub use job::{Canceller, Imap, Job, MapFuture};
pub use maps::{Asynced, Background, Deliver, Maps, Now};

/// Room a chunk frame needs beside its items.
const CHUNK_OVERHEAD: usize = 4096;

/// How a [`Pool`] runs. Start from `PoolConfig::default()` and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Number of workers; 0 means one per core ([`std::thread::available_parallelism`]).
    ///
    /// Default: 0.
    pub workers: usize,
    /// Largest frame either side accepts, in bytes; an item or result that does not fit
    /// fails with [`Error::TooLarge`]. At least 64 KiB.
    ///
    /// Default: 64 MiB.
    pub max_frame_bytes: u32,
    /// How long a worker process may take to start and prove its build.
    ///
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// Directory for the private socket directories of starting workers.
    ///
    /// Default: `None`, meaning [`std::env::temp_dir`].
    pub socket_dir: Option<PathBuf>,
    /// Most items of one map in flight (sent and not yet returned to the caller) at a time.
    ///
    /// Default: 16384.
    pub max_in_flight: usize,
    /// How each worker process is set up: environment, working directory, extra arguments,
    /// where its standard output and standard error go (captured output is the pool's:
    /// [`Pool::captured`]). A thread pool ([`Pool::threads`]) has no processes to set up.
    ///
    /// Default: [`ChildSetup::default`] (inherit everything).
    pub setup: ChildSetup,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            socket_dir: None,
            max_in_flight: 16384,
            setup: ChildSetup::default(),
        }
    }
}

impl PoolConfig {
    /// Sets [`workers`](PoolConfig::workers).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets [`max_frame_bytes`](PoolConfig::max_frame_bytes).
    pub fn max_frame_bytes(mut self, bytes: u32) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    crate::config::child_setup_setters!("every worker", "PoolConfig");

    fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// Persistent workers that map functions and `#[skprocess]` types over items.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// use skprocess_runtime::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let pool = Pool::new(4)?;
/// assert_eq!(pool.map(square, 1..=4)?, [1, 4, 9, 16]);
/// assert_eq!(pool.star().map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4)])?, [3, 7]);
/// assert_eq!(pool.map(|x: u64| x * 2, 0..3)?, [0, 2, 4]);
/// # Ok(()) }
/// ```
///
/// The workers are this executable started again (see [`init`](crate::init)); they start in
/// [`new`](Pool::new) and prove they are the same build before any work reaches them. A pool
/// is `Send + Sync`: maps may run from several threads at once. Dropping it stops it: it
/// waits for its running maps and its workers.
pub struct Pool {
    core: Arc<PoolCore>,
}

/// What a pool's maps share with its dispatcher.
pub(crate) struct PoolCore {
    events: EventSender,
    next_job: AtomicU64,
    closed: AtomicBool,
    /// Held while a job is admitted and while the pool closes, so that every admitted job
    /// reaches the dispatcher before the close does (it then waits for that job).
    admission: Mutex<()>,
    workers: usize,
    pids: WorkerPids,
    /// Largest encoded item.
    item_limit: usize,
    max_in_flight: usize,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// Completed when the dispatcher thread ends, even by a panic: a job waiting for results
    /// then stops waiting, and `stop`/`kill` wait on it.
    dispatcher_ended: Arc<Completion<()>>,
    tallies: WorkerTallies,
    /// What the workers wrote to the streams the pool's setup captures.
    captured: Option<Arc<CapturedOutput>>,
}

/// Completes its one-shot when dropped: when the dispatcher thread ends, however it ends.
struct RunningFlag(Arc<Completion<()>>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.complete(());
    }
}

impl PoolCore {
    fn command(&self, command: Command) {
        // The dispatcher outlives every sender that matters; a send after it ended is moot.
        let _ = self.events.send(Event::Command(command));
    }

    /// Whether the dispatcher thread still runs.
    fn dispatcher_running(&self) -> bool {
        !self.dispatcher_ended.is_done()
    }

    /// Registers a job (`Command::Submit`) unless the pool is closed.
    fn admit(&self, submit: Command) -> bool {
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        self.command(submit);
        true
    }

    /// Closes the pool for new jobs and sends `command` (close or terminate) after every job
    /// already admitted.
    fn shut(&self, command: Command) {
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::SeqCst);
        self.command(command);
    }

    /// Waits until the dispatcher thread ended or `deadline` passed; whether it ended.
    fn join_until(&self, deadline: Option<std::time::Instant>) -> bool {
        if !self.dispatcher_ended.wait_until(deadline) {
            return false;
        }
        self.join();
        true
    }

    fn join(&self) {
        let handle = self
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for PoolCore {
    fn drop(&mut self) {
        self.command(Command::Close);
        self.join();
    }
}

impl Pool {
    /// Starts `workers` worker processes (0: one per core) and waits until each is ready or
    /// has failed to start. It fails ([`Error::NoWorker`]) only when none started; a worker
    /// that did not (its ready wait, [`PoolConfig::connect_timeout`], ran out on an
    /// overloaded machine) leaves its slot to be started again when items come, so the pool
    /// may begin with fewer workers than asked ([`worker_pids`](Pool::worker_pids) lists those
    /// running).
    pub fn new(workers: usize) -> Result<Self, Error> {
        Self::with_config(PoolConfig::default().workers(workers))
    }

    /// Starts a pool configured by `config`.
    pub fn with_config(config: PoolConfig) -> Result<Self, Error> {
        crate::protocol::bootstrap::forbid_unhooked_child();
        let mut spawn = crate::config::Config::default()
            .max_frame_bytes(config.max_frame_bytes)
            .connect_timeout(config.connect_timeout)
            .setup(config.setup.clone());
        spawn.socket_dir = config.socket_dir.clone();
        spawn.validate()?;
        let sink = Sink::for_worker(&config.setup, "pool worker");
        let captured = sink.captured.clone();
        let launcher = launch::ProcessLauncher {
            config: spawn,
            sink,
        };
        Self::start(&config, Box::new(launcher), captured)
    }

    /// Starts a pool of `workers` threads in this process (0: one per core), with the same
    /// maps: for I/O-bound work. A late item's thread cannot be killed; it is abandoned and
    /// replaced.
    pub fn threads(workers: usize) -> Result<Self, Error> {
        let config = PoolConfig::default().workers(workers);
        Self::start(&config, Box::new(threads::ThreadLauncher), None)
    }

    fn start(
        config: &PoolConfig,
        launcher: Box<dyn Launcher>,
        captured: Option<Arc<CapturedOutput>>,
    ) -> Result<Self, Error> {
        let workers = config.worker_count();
        let frame = config.max_frame_bytes as usize;
        let (events_in, events, turns) = turns::channel();
        let pids = WorkerPids::default();
        let chunk_bytes = frame.saturating_sub(CHUNK_OVERHEAD) / 2;
        let dispatcher = Dispatcher::new(
            workers,
            chunk_bytes,
            launcher,
            events,
            events_in.clone(),
            Arc::clone(&pids),
        );
        let tallies = dispatcher.tallies();
        turns.install(dispatcher);
        let started = match turns.lock().as_mut() {
            Some(dispatcher) => dispatcher.start_workers(),
            None => Ok(()),
        };
        if let Err(error) = started {
            drop(turns.end());
            return Err(error);
        }
        let ended = Completion::new();
        let alive = RunningFlag(Arc::clone(&ended));
        let thread_turns = Arc::clone(&turns);
        let spawned = std::thread::Builder::new()
            .name("skprocess-pool".into())
            .spawn(move || {
                let _alive = alive;
                dispatcher::run(&thread_turns);
            });
        let handle = match spawned {
            Ok(handle) => handle,
            Err(error) => {
                drop(turns.end());
                return Err(error.into());
            }
        };
        let item_limit = chunk_bytes.min(frame.saturating_sub(RESULT_OVERHEAD + CHUNK_OVERHEAD));
        Ok(Self {
            core: Arc::new(PoolCore {
                events: events_in,
                next_job: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                admission: Mutex::new(()),
                workers,
                pids,
                item_limit,
                max_in_flight: config.max_in_flight.max(1),
                dispatcher: Mutex::new(Some(handle)),
                dispatcher_ended: ended,
                tallies,
                captured,
            }),
        })
    }

    /// What the workers wrote to the streams [`PoolConfig::setup`] captures
    /// ([`Stdio::Capture`](crate::Stdio::Capture)), every worker (replacements too) appending to it; `None` when it
    /// captures neither.
    pub fn captured(&self) -> Option<Arc<CapturedOutput>> {
        self.core.captured.clone()
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.core.workers
    }

    /// The process ids of the worker processes running now (empty for a thread pool).
    pub fn worker_pids(&self) -> Vec<u32> {
        let pids = self
            .core
            .pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pids.values().copied().collect()
    }

    /// What each ready worker measured, one [`WorkerStatus`](crate::WorkerStatus) per worker
    /// (doctable's `WorkerPool` statistics): `busy` and `items` add up the chunk timings the
    /// worker measured and reported, `uptime` runs from when it was ready, and `starved` is the
    /// rest of its uptime (time without a chunk to run, or sending results).
    pub fn status(&self) -> Vec<crate::WorkerStatus> {
        let tallies = self
            .core
            .tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tallies
            .values()
            .map(|tally| {
                let uptime = tally.ready_since.elapsed();
                let busy = Duration::from_nanos(tally.busy_nanos).min(uptime);
                crate::worker_status::WorkerStatus::measured(uptime, busy, tally.items)
            })
            .collect()
    }

    /// Asks the pool to stop and does not wait: maps already running (and lazy maps already
    /// created) finish, new ones fail with [`Error::Gone`]
    /// ([`Peer::Pool`](crate::error::Peer::Pool)), and the workers exit once the running maps
    /// are done. [`stop`](Pool::stop) asks and waits.
    pub fn request_stop(&self) {
        if !self.is_stopped() {
            self.core.shut(Command::Close);
        }
    }

    /// Stops the pool and waits: maps already running finish, new ones fail with
    /// [`Error::Gone`] ([`Peer::Pool`](crate::error::Peer::Pool)), and the call returns once
    /// the running maps are done and the workers have exited. Not from inside a map's
    /// function or a lazy map's loop on this pool, which would wait for itself.
    pub fn stop(&self) -> Result<(), Error> {
        self.stop_timeout(Duration::MAX).map(drop)
    }

    /// Like [`stop`](Pool::stop), waiting at most `timeout` (`Duration::MAX`: no limit);
    /// whether the maps and workers ended in time. The pool stays stopped either way.
    pub fn stop_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        self.request_stop();
        Ok(self.core.join_until(crate::deadline::after(Some(timeout))))
    }

    /// Kills the workers now and waits until they are reaped; items not finished fail with
    /// [`Error::Gone`] ([`Peer::Pool`](crate::error::Peer::Pool)), as do new maps.
    pub fn kill(&self) -> Result<(), Error> {
        self.core.shut(Command::Terminate);
        self.core.join_until(None);
        Ok(())
    }

    /// Whether the pool was stopped ([`request_stop`](Pool::request_stop),
    /// [`stop`](Pool::stop)) or killed.
    pub fn is_stopped(&self) -> bool {
        self.core.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Pool {
    /// Stops the pool and waits for its running maps and its workers to end.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.core.workers)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}
