//! A process worker, the parent side: starts the pool's worker child through the one spawn
//! path, hands it one isolated chunk holding the arguments, and waits on a thread of its own
//! for the result or the child's end. Every wait is for an event — the result frame, the
//! connection's end, the reaper's word that the child exited — never a sleep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::completion::Completion;
use crate::config::Config;
use crate::error::Error;
use crate::parent::exit::Exit;
use crate::parent::reaper::ChildProcess;
use crate::parent::spawn::{Spawned, Ungated};
use crate::pool::Spread;
use crate::pool::function;
use crate::pool::launch;
use crate::protocol::Role;
use crate::protocol::pool::{Chunk, TaskRef, ToPool, WireItem, WireOutcome};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};

/// Largest frame between a worker and its parent (arguments, result).
const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// How long the child may take to start and prove its build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child whose connection ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A worker's outcome, set once by its thread.
pub(crate) type Outcome<R> = Arc<Completion<Result<R, Error>>>;

/// The handle's hold on the child: its process, and the thread that waits for it.
pub(crate) struct ProcessWorker {
    child: Arc<ChildProcess>,
    killed: Arc<AtomicBool>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl ProcessWorker {
    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Sends SIGKILL; the reader thread sees the end and records [`Error::Killed`].
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.child.kill();
    }

    /// Waits until `deadline` for `outcome` — set by the reader thread only once the child was
    /// reaped — and then for the thread, which ends right after setting it.
    pub(crate) fn join_reader<R>(&self, outcome: &Outcome<R>, deadline: Option<Instant>) {
        if !outcome.wait_until(deadline) {
            return;
        }
        let handle = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// A started worker: the hold on its process, and the slot its outcome goes to.
pub(crate) type Started<R> = (ProcessWorker, Outcome<R>);

/// Spawns the child and the thread that connects to it and waits for its result.
pub(crate) fn start<F, Args>(args: &Args) -> Result<Started<F::Output>, Error>
where
    F: Spread<Args>,
    Args: Serialize + DeserializeOwned,
    F::Output: Serialize + DeserializeOwned + Send + 'static,
{
    crate::protocol::bootstrap::forbid_unhooked_child();
    let offset = function::offset_of(function::call_spread::<F, Args>);
    let arguments = frame::encode(args)?;
    let config = Config::default()
        .max_frame_bytes(MAX_FRAME)
        .connect_timeout(CONNECT_TIMEOUT);
    let spawned = Spawned::start(&config, &Ungated)?;
    let child = Arc::clone(spawned.child());
    let killed = Arc::new(AtomicBool::new(false));
    let completion = Completion::new();
    let watch = Watch {
        child: Arc::clone(&child),
        killed: Arc::clone(&killed),
        completion: Arc::clone(&completion),
    };
    let thread = std::thread::Builder::new()
        .name("skprocess-worker".into())
        .spawn(move || watch.run(spawned, &config, offset, &arguments));
    let reader = match thread {
        Ok(reader) => reader,
        Err(e) => {
            child.kill_and_reap();
            return Err(Error::Io(e));
        }
    };
    let worker = ProcessWorker {
        child,
        killed,
        reader: Mutex::new(Some(reader)),
    };
    Ok((worker, completion))
}

/// The reader thread's state.
struct Watch<R> {
    child: Arc<ChildProcess>,
    killed: Arc<AtomicBool>,
    completion: Outcome<R>,
}

impl<R: DeserializeOwned> Watch<R> {
    fn run(self, spawned: Spawned, config: &Config, offset: i64, arguments: &[u8]) {
        let outcome = self.exchange(spawned, config, offset, arguments);
        // The connection is closed: the child exits on its own, or is killed after the grace.
        let status = self.child.reap(EXIT_GRACE);
        let outcome = match outcome {
            Some(outcome) => outcome,
            None if self.killed.load(Ordering::SeqCst) => Err(Error::Killed),
            None => Err(crashed(&status)),
        };
        self.completion.complete(outcome);
    }

    /// Starts the child's work and reads its answer; `None` when it ended without one. The
    /// connection is closed on return, which ends a child that is still there.
    fn exchange(
        &self,
        spawned: Spawned,
        config: &Config,
        offset: i64,
        arguments: &[u8],
    ) -> Option<Result<R, Error>> {
        // The chunk goes out with the start, without waiting for `Ready` first: one round
        // trip less, and a worker of another build refuses before it reads it.
        let send_chunk = |connection: &Connection| connection.send(&chunk(offset, arguments));
        let started = launch::finish(spawned, Role::PoolWorker, config, send_chunk);
        let (connection, reader, _child) = match started {
            Ok(started) => started,
            Err(_) if self.killed.load(Ordering::SeqCst) => return Some(Err(Error::Killed)),
            Err(error) => return Some(Err(error)),
        };
        let outcome = read_result(&connection, reader);
        connection.shutdown();
        outcome.map(|bytes| bytes.and_then(|bytes| Ok(frame::decode_owned(&bytes)?)))
    }
}

fn crashed(exit: &Exit) -> Error {
    Error::Crashed {
        status: exit.describe(),
        run: 0,
    }
}

/// The one isolated chunk of one item: the arguments, for the trampoline at `offset`.
fn chunk(offset: i64, arguments: &[u8]) -> Chunk<'_> {
    Chunk {
        job: 0,
        task: TaskRef::Function { offset },
        isolated: true,
        items: vec![WireItem {
            index: 0,
            bytes: arguments,
        }],
    }
}

/// Reads until the chunk's result; `None` when the connection ended first.
fn read_result(connection: &Connection, mut reader: FrameReader) -> Option<Result<Vec<u8>, Error>> {
    loop {
        let frame = reader.read_frame(&mut connection.stream()).ok()??;
        match frame::decode::<ToPool<'_>>(frame.bytes()) {
            Ok(ToPool::Results { results, .. }) => {
                if let Some(result) = results.into_iter().next() {
                    return Some(match result.outcome {
                        WireOutcome::Output(bytes) => Ok(bytes.to_vec()),
                        WireOutcome::Failed(failure) => Err(Error::from(failure)),
                    });
                }
            }
            Ok(ToPool::Running { .. }) => {}
            Ok(_) | Err(_) => return None,
        }
    }
}
