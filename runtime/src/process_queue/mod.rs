//! [`ProcessQueue`]: a queue that starts its own worker process when there is work, and lets
//! it exit when the queue is empty (smq's `ProcessQueue`).
//!
//! How the parts fit:
//!
//! - The items live in the creating process (`owner.rs`), in a bounded queue whose
//!   bookkeeping is the sans-IO `machine.rs`: which items wait, which one the worker holds,
//!   and which worker (by generation) is the live one.
//! - The worker is started with [`run`](crate::run) running `drain.rs`'s loop, monomorphised
//!   for the item and handler types; it connects back to the owner's server
//!   (`transport::server`) and asks for one item at a time (`protocol/process_queue.rs`).
//! - The server's reader thread for each worker connection answers its requests (a session in
//!   `owner.rs`); a connection that ends without the worker being retired requeues the item
//!   it held.

mod drain;
mod machine;
mod owner;

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::pool::{Plain, function};
use crate::protocol::pool::FunctionOffsets;
use crate::protocol::process_queue::ITEM_OVERHEAD;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::server::{Peer, Server, ServerConfig};
use crate::worker::Worker;
use owner::{Owner, Running, WorkerSession};

/// Smallest accepted [`ProcessQueueConfig::max_frame_bytes`].
const MIN_FRAME: u32 = 64 * 1024;

/// How a [`ProcessQueue`] holds its items. Start from `ProcessQueueConfig::default()` and
/// adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessQueueConfig {
    /// Most items not done (waiting, plus the one the worker runs) the queue holds; a
    /// [`start`](ProcessQueue::start) that would go over it queues nothing and fails with
    /// [`Error::ProcessQueueFull`]. At least 1.
    ///
    /// Default: 65536.
    pub capacity: usize,
    /// Largest encoded item, plus a few bytes of framing; a larger item fails `start` with
    /// [`Error::TooLarge`] and nothing is queued. At least 64 KiB.
    ///
    /// Default: 64 MiB.
    pub max_frame_bytes: u32,
    /// Directory for the private socket directory the worker connects to.
    ///
    /// Default: `None`, meaning [`std::env::temp_dir`].
    pub socket_dir: Option<PathBuf>,
    /// How many workers may die (crash, be killed from outside) while running one item
    /// before that item is given up: it leaves the queue and waits in
    /// [`take_failed`](ProcessQueue::take_failed), so one poisonous item cannot block the
    /// items behind it forever. A [`stop`](ProcessQueue::stop) does not count. At least 1.
    ///
    /// Default: 3.
    pub attempts: u32,
}

impl Default for ProcessQueueConfig {
    fn default() -> Self {
        Self {
            capacity: 65536,
            max_frame_bytes: 64 * 1024 * 1024,
            socket_dir: None,
            attempts: 3,
        }
    }
}

impl ProcessQueueConfig {
    /// Sets [`capacity`](ProcessQueueConfig::capacity).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`max_frame_bytes`](ProcessQueueConfig::max_frame_bytes).
    pub fn max_frame_bytes(mut self, bytes: u32) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets [`attempts`](ProcessQueueConfig::attempts).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.attempts == 0 {
            return Err(Error::Config(
                "a process queue's `attempts` must be at least 1".into(),
            ));
        }
        if self.capacity == 0 {
            return Err(Error::Config(
                "a process queue's capacity must be at least 1".into(),
            ));
        }
        if self.max_frame_bytes < MIN_FRAME {
            return Err(Error::Config(format!(
                "a process queue's `max_frame_bytes` must be at least {MIN_FRAME}"
            )));
        }
        Ok(())
    }
}

/// A queue that runs each item through `handler` in a worker process it starts itself when
/// there is work, and that exits once the queue is empty.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// use skprocess_runtime::ProcessQueue;
///
/// fn resize(path: String) { /* slow work, in another process */ }
///
/// let queue = ProcessQueue::new(resize);
/// let (spawned_new, queued) = queue.start(["a.png".to_owned(), "b.png".to_owned()])?;
/// assert!(spawned_new);
/// // More work while the worker runs: appended, no new process.
/// let (spawned_new, _) = queue.start(["c.png".to_owned()])?;
/// # let _ = (spawned_new, queued);
/// # Ok(()) }
/// ```
///
/// - **Never blocks on the worker**: [`start`](ProcessQueue::start) appends and, when no worker
///   is alive, spawns one — it never waits for an item to run, so it can be called from a web
///   handler, from several threads at once (the queue is `Send + Sync`).
/// - **The items stay here**: in a bounded queue in the creating process; the worker takes
///   them one at a time over a local socket. An item is removed only when the worker reports
///   it done.
/// - **At least once**: a worker that dies while it runs an item (a crash, a `SIGKILL`,
///   [`stop`](ProcessQueue::stop)) leaves that item at the front of the queue, and the next
///   `start` (even with no items) starts a new worker that runs it again. A handler that
///   panics has had its turn: the item is done, the panic is logged (`tracing` warning) and
///   the worker goes on. An item that crashes its worker every time is retried at every
///   `start`.
/// - **No orphans**: [`stop`](ProcessQueue::stop) and dropping the queue kill and reap the
///   worker, and a worker exits by itself when the creating process dies (even by `SIGKILL`).
///
/// The handler is a `fn` pointer — a `fn` item or a closure that captures nothing (a capturing
/// closure does not compile): the worker is this executable started again (see
/// [`init`](crate::init)) and finds the handler by its offset in the same build. Send what it
/// needs in the items.
pub struct ProcessQueue<T> {
    owner: Arc<Owner>,
    config: ProcessQueueConfig,
    /// The rendezvous the workers connect to, started with the first worker.
    service: Mutex<Option<Server>>,
    /// Where the handler lies, for the workers.
    handler: FunctionOffsets,
    items: PhantomData<fn(T)>,
}

impl<T> ProcessQueue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// A queue whose worker runs `handler` on each item, with the default
    /// [`ProcessQueueConfig`]. Nothing starts until the first [`start`](ProcessQueue::start).
    pub fn new(handler: fn(T)) -> Self {
        Self::build(handler, ProcessQueueConfig::default())
    }

    /// A queue with `config`; fails with [`Error::Config`] when it is invalid.
    pub fn with_config(handler: fn(T), config: ProcessQueueConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self::build(handler, config))
    }

    fn build(handler: fn(T), config: ProcessQueueConfig) -> Self {
        Self {
            owner: Arc::new(Owner::new(config.capacity, config.attempts)),
            config,
            service: Mutex::new(None),
            handler: function::offsets::<Plain, T, ()>(handler),
            items: PhantomData,
        }
    }

    /// Appends `items` and starts a worker process when none is alive (and anything waits);
    /// returns whether it started one, and how many items are not done now.
    ///
    /// It never waits for items to run. All the items are queued or none: more than the
    /// queue has room for is [`Error::ProcessQueueFull`], an item too large for a frame is
    /// [`Error::TooLarge`]. A worker that could not be spawned is that error, with the items
    /// queued: the next `start` tries again. `start` with no items starts a worker for what
    /// is left in the queue (after a crash or a [`stop`](ProcessQueue::stop)).
    pub fn start(&self, items: impl IntoIterator<Item = T>) -> Result<(bool, usize), Error> {
        let encoded = self.encode(items)?;
        let mut slot = self.owner.worker();
        let appended = self.owner.append(encoded)?;
        let Some(generation) = appended.spawn else {
            return Ok((false, appended.len));
        };
        match self.spawn_worker(generation) {
            Ok(process) => {
                *slot = Some(Running {
                    generation,
                    process,
                });
                Ok((true, appended.len))
            }
            Err(error) => {
                self.owner.machine().ended(generation);
                Err(error)
            }
        }
    }

    fn encode(&self, items: impl IntoIterator<Item = T>) -> Result<Vec<Arc<[u8]>>, Error> {
        let limit = (self.config.max_frame_bytes as usize).saturating_sub(ITEM_OVERHEAD);
        items
            .into_iter()
            .map(|item| {
                let bytes = frame::encode(&item)?;
                if bytes.len() > limit {
                    return Err(Error::TooLarge {
                        size: bytes.len() as u64,
                        limit: limit as u64,
                    });
                }
                Ok(Arc::from(bytes))
            })
            .collect()
    }

    fn spawn_worker(&self, generation: u64) -> Result<Worker<()>, Error> {
        let endpoint = self.endpoint()?;
        let max_frame = self.config.max_frame_bytes;
        // The drain loop is the same for every item type: the handler's trampoline decodes.
        let drain: fn(Endpoint, u64, u32, FunctionOffsets) = drain::drain;
        crate::worker::run(drain, (endpoint, generation, max_frame, self.handler))
    }

    /// The service's endpoint, starting the service on first need.
    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut service = self.service.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(service) = service.as_ref() {
            return Ok(service.endpoint().clone());
        }
        let owner = Arc::clone(&self.owner);
        let mut server = ServerConfig::new("skprocess-pqueue", self.config.max_frame_bytes);
        server.socket_dir = self.config.socket_dir.clone();
        let started = Server::start(server, move |_: &Peer| {
            Some(WorkerSession::new(Arc::clone(&owner)))
        })?;
        let endpoint = started.endpoint().clone();
        *service = Some(started);
        Ok(endpoint)
    }
}

impl<T> ProcessQueue<T> {
    /// Items not done: waiting, plus the one the worker runs.
    pub fn len(&self) -> usize {
        self.owner.machine().len()
    }

    /// Whether every item is done.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a worker process is alive and serving this queue. A worker that found the
    /// queue empty counts as gone at once, even while its process is still exiting: a
    /// `start` after that spawns a new one.
    pub fn is_alive(&self) -> bool {
        self.owner.worker().is_some()
    }

    /// Whether all the work is over: no item waits or runs, and no worker is alive. After a
    /// [`stop`](ProcessQueue::stop), or a worker that died, with items still queued, it is
    /// not: [`is_alive`](ProcessQueue::is_alive) says whether a worker runs.
    pub fn is_done(&self) -> bool {
        // The worker's slot first, then the items, in the order `stop` takes them.
        let worker = self.owner.worker();
        worker.is_none() && self.is_empty()
    }

    /// The process id of the live worker (see [`is_alive`](ProcessQueue::is_alive)), if any.
    pub fn worker_pid(&self) -> Option<u32> {
        self.owner
            .worker()
            .as_ref()
            .and_then(|running| running.process.pid())
    }

    /// Kills the worker now and reaps it; returns whether one was running. The items not
    /// done stay queued, the one it was running at the front: the next
    /// [`start`](ProcessQueue::start) runs them (call [`clear`](ProcessQueue::clear) first to
    /// drop them).
    pub fn stop(&self) -> Result<bool, Error> {
        let mut slot = self.owner.worker();
        let stopped = self.owner.machine().stop();
        let Some(running) = slot.take() else {
            return Ok(stopped.is_some());
        };
        running.process.kill()?;
        Ok(true)
    }

    /// Takes the items given up since the last call, in the order they were given up: each
    /// was running when [`attempts`](ProcessQueueConfig::attempts) workers died.
    pub fn take_failed(&self) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned,
    {
        let given_up = self.owner.machine().take_given_up();
        given_up
            .iter()
            .map(|entry| frame::decode_owned(&entry.bytes).map_err(Error::from))
            .collect()
    }

    /// Drops the items that wait (not the one the worker runs); returns how many.
    pub fn clear(&self) -> usize {
        self.owner.machine().clear()
    }
}

impl<T> Drop for ProcessQueue<T> {
    /// Kills and reaps the worker (see [`stop`](ProcessQueue::stop)) and closes the socket
    /// workers connect to.
    fn drop(&mut self) {
        let _ = self.stop();
        let service = self
            .service
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(service);
    }
}
