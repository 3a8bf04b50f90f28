//! A process worker, the parent side: starts the pool's worker child, hands it one isolated
//! chunk holding the arguments, and waits on a thread of its own for the result or the
//! child's end.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::parent::spawn::command;
use crate::pool::function;
use crate::pool::launch;
use crate::pool::{Mode, Star};
use crate::protocol::Role;
use crate::protocol::pool::{Chunk, FunctionOffsets, TaskRef, ToPool, WireItem, WireOutcome};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::rendezvous::{self, Rendezvous};

use super::completion::Completion;

/// Largest frame between a worker and its parent (arguments, result).
const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// How long the child may take to start and prove its build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The handle's hold on the child: its process, and the thread that waits for it.
pub(crate) struct ProcessWorker {
    pid: u32,
    child: Arc<Mutex<Option<Child>>>,
    killed: Arc<AtomicBool>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl ProcessWorker {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGKILL; the reader thread reaps the child and records [`Error::Killed`].
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        launch::kill(&self.child);
    }

    /// Waits at most `bound` for the reader thread, which ends once the child was reaped.
    pub(crate) fn join_reader(&self, bound: Duration) {
        let handle = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return;
        };
        let deadline = Instant::now().checked_add(bound);
        while !handle.is_finished() && deadline.is_some_and(|d| Instant::now() < d) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }
}

/// What the reader thread needs to finish the start and wait for the result.
struct Pending {
    rendezvous: Rendezvous,
    token: String,
    pid: u32,
    /// The encoded arguments.
    arguments: Vec<u8>,
    offset: FunctionOffsets,
}

/// A started worker: the hold on its process, and the slot its outcome goes to.
pub(crate) type Started<R> = (ProcessWorker, Arc<Completion<R>>);

/// Spawns the child and the thread that waits for it.
pub(crate) fn start<Args, R>(
    f: <Star as Mode<Args, R>>::Function,
    args: &Args,
) -> Result<Started<R>, Error>
where
    Star: Mode<Args, R>,
    Args: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    crate::child::bootstrap::forbid_unhooked_child();
    let offset = function::offsets::<Star, Args, R>(f);
    let arguments = frame::encode(args)?;
    let token = rendezvous::random_hex(16)?;
    let rendezvous = Rendezvous::bind(None)?;
    let child = command(&rendezvous, &token, MAX_FRAME, None)?
        .spawn()
        .map_err(Error::Spawn)?;
    let pid = child.id();
    let child = Arc::new(Mutex::new(Some(child)));
    let killed = Arc::new(AtomicBool::new(false));
    let completion = Arc::new(Completion::new());
    let pending = Pending {
        rendezvous,
        token,
        pid,
        arguments,
        offset,
    };
    let watch = Watch {
        child: Arc::clone(&child),
        killed: Arc::clone(&killed),
        completion: Arc::clone(&completion),
    };
    let spawned = std::thread::Builder::new()
        .name("skprocess-worker".into())
        .spawn(move || watch.run(pending));
    let reader = match spawned {
        Ok(reader) => reader,
        Err(e) => {
            launch::kill(&child);
            launch::reap(&child);
            return Err(Error::Io(e));
        }
    };
    let worker = ProcessWorker {
        pid,
        child,
        killed,
        reader: Mutex::new(Some(reader)),
    };
    Ok((worker, completion))
}

/// The reader thread's state.
struct Watch<R> {
    child: Arc<Mutex<Option<Child>>>,
    killed: Arc<AtomicBool>,
    completion: Arc<Completion<R>>,
}

impl<R: DeserializeOwned> Watch<R> {
    fn run(self, pending: Pending) {
        let outcome = self.exchange(pending);
        let status = launch::reap(&self.child);
        let outcome = match outcome {
            Some(outcome) => outcome,
            None if self.killed.load(Ordering::SeqCst) => Err(Error::Killed),
            None => Err(Error::Crashed { status, run: 0 }),
        };
        self.completion.end(outcome);
    }

    /// Starts the child's work and reads its answer; `None` when it ended without one. The
    /// connection is closed on return, which ends a child that is still there.
    fn exchange(&self, pending: Pending) -> Option<Result<R, Error>> {
        let Pending {
            rendezvous,
            token,
            pid,
            arguments,
            offset,
        } = pending;
        let exited = || launch::lock(&self.child).as_mut()?.try_wait().ok()?;
        let deadline = crate::deadline::after(Some(CONNECT_TIMEOUT));
        let identity = (Role::PoolWorker, pid);
        let handshake =
            launch::handshake(rendezvous, &token, MAX_FRAME, deadline, identity, exited);
        let (connection, reader) = match handshake {
            Ok(started) => started,
            Err(_) if self.killed.load(Ordering::SeqCst) => return Some(Err(Error::Killed)),
            Err(error) => {
                launch::kill(&self.child);
                return Some(Err(error));
            }
        };
        let outcome = send_and_read(&connection, reader, offset, &arguments);
        connection.shutdown();
        outcome.map(|bytes| bytes.and_then(|bytes| Ok(frame::decode_owned(&bytes)?)))
    }
}

/// Sends the one chunk and reads until its result; `None` when the connection ended first.
fn send_and_read(
    connection: &Connection,
    mut reader: FrameReader,
    offset: FunctionOffsets,
    arguments: &[u8],
) -> Option<Result<Vec<u8>, Error>> {
    let chunk = Chunk {
        job: 0,
        task: TaskRef::Function { offset },
        isolated: true,
        items: vec![WireItem {
            index: 0,
            bytes: arguments,
        }],
    };
    connection.send(&chunk).ok()?;
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
