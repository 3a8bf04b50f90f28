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
use crate::config::{ChildSetup, Config};
use crate::error::Error;
use crate::parent::exit::Exit;
use crate::parent::output::{CapturedOutput, Sink};
use crate::parent::reaper::ChildProcess;
use crate::parent::spawn::{Spawned, Ungated};
use crate::pool::function;
use crate::pool::launch;
use crate::pool::{Mode, Star};
use crate::protocol::Role;
use crate::protocol::pool::{
    Chunk, FunctionOffsets, Reporting, TaskRef, ToPool, ToWorker, WireItem, WireOutcome,
};
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
    /// What the child wrote to the streams its setup captures.
    captured: Option<Arc<CapturedOutput>>,
}

impl ProcessWorker {
    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub(crate) fn captured(&self) -> Option<Arc<CapturedOutput>> {
        self.captured.clone()
    }

    /// Sends SIGKILL; the reader thread sees the end and records [`Error::Killed`].
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.child.kill();
    }

    /// Waits until `deadline` for `outcome`, which is set only once the child was reaped.
    /// The reader thread is then past everything but its own return (it too only waited for
    /// the reaper), so it is let go rather than waited for: one wake-up less on every join.
    pub(crate) fn join_reader<R>(&self, outcome: &Outcome<R>, deadline: Option<Instant>) {
        if outcome.wait_until(deadline) {
            let handle = self
                .reader
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(handle);
        }
    }
}

/// A started worker: the hold on its process, and the slot its outcome goes to.
pub(crate) type Started<R> = (ProcessWorker, Outcome<R>);

/// Spawns the child, set up as `setup` says, and the thread that connects to it and waits for
/// its result.
pub(crate) fn start<Args, R>(
    f: <Star as Mode<Args, R>>::Function,
    args: &Args,
    setup: ChildSetup,
) -> Result<Started<R>, Error>
where
    Star: Mode<Args, R>,
    Args: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    crate::protocol::bootstrap::forbid_unhooked_child();
    let offset = function::offsets::<Star, Args, R>(f);
    let arguments = frame::encode(args)?;
    let sink = Sink::for_worker(&setup, "worker");
    let captured = sink.captured.clone();
    let config = Config::default()
        .max_frame_bytes(MAX_FRAME)
        .connect_timeout(CONNECT_TIMEOUT)
        .setup(setup);
    let spawned = Spawned::start(&config, &Ungated(sink))?;
    let child = Arc::clone(spawned.child());
    let killed = Arc::new(AtomicBool::new(false));
    let completion = Completion::new();
    let settle = Arc::new(Settle {
        ending: Mutex::new(Ending {
            answer: None,
            exit: None,
        }),
        killed: Arc::clone(&killed),
        completion: Arc::clone(&completion),
    });
    child.on_exit({
        let settle = Arc::clone(&settle);
        move |exit| settle.exited(exit.clone())
    });
    let watch = Watch {
        child: Arc::clone(&child),
        killed: Arc::clone(&killed),
        settle,
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
        captured,
    };
    Ok((worker, completion))
}

/// The two halves of a worker's end: what its connection said (`None`: it ended without a
/// result) and how its process ended.
struct Ending<R> {
    answer: Option<Option<Result<R, Error>>>,
    exit: Option<Exit>,
}

/// Settles a worker's outcome once both halves of its end are known, on the thread of
/// whichever came second — normally the reaper's, so a `join` is woken by the reaper itself.
struct Settle<R> {
    ending: Mutex<Ending<R>>,
    killed: Arc<AtomicBool>,
    completion: Outcome<R>,
}

impl<R> Settle<R> {
    fn answered(&self, answer: Option<Result<R, Error>>) {
        let mut ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
        ending.answer = Some(answer);
        self.settle(ending);
    }

    fn exited(&self, exit: Exit) {
        let mut ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
        ending.exit = Some(exit);
        self.settle(ending);
    }

    fn settle(&self, mut ending: std::sync::MutexGuard<'_, Ending<R>>) {
        if ending.answer.is_none() || ending.exit.is_none() {
            return;
        }
        let (Some(answer), Some(exit)) = (ending.answer.take(), ending.exit.take()) else {
            return;
        };
        drop(ending);
        let outcome = match answer {
            Some(outcome) => outcome,
            None if self.killed.load(Ordering::SeqCst) => Err(Error::Killed),
            None => Err(crashed(&exit)),
        };
        self.completion.complete(outcome);
    }
}

/// The reader thread's state.
struct Watch<R> {
    child: Arc<ChildProcess>,
    killed: Arc<AtomicBool>,
    settle: Arc<Settle<R>>,
}

impl<R: DeserializeOwned> Watch<R> {
    fn run(self, spawned: Spawned, config: &Config, offset: FunctionOffsets, arguments: &[u8]) {
        let answer = self.exchange(spawned, config, offset, arguments);
        self.settle.answered(answer);
        // The connection is closed: the child exits on its own, or is killed after the grace;
        // the reaper settles the outcome then.
        self.child.reap(EXIT_GRACE);
    }

    /// Starts the child's work and reads its answer; `None` when it ended without one. The
    /// connection is closed on return, which ends a child that is still there.
    fn exchange(
        &self,
        spawned: Spawned,
        config: &Config,
        offset: FunctionOffsets,
        arguments: &[u8],
    ) -> Option<Result<R, Error>> {
        // The chunk goes out with the start, without waiting for `Ready` first: one round
        // trip less, and a worker of another build refuses before it reads it. Nothing
        // follows it, and saying so at once lets the child exit as soon as its result is out
        // rather than after hearing that it was read.
        let send_chunk = |connection: &Connection| {
            connection.send(&ToWorker::Chunk(chunk(offset, arguments)))?;
            // A named pipe has no half-close, and the platform layer refuses it: on Windows
            // the child exits when the parent closes after reading its result.
            match connection.stream().shutdown_write() {
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
                shut => shut.map_err(Error::from),
            }
        };
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
fn chunk(offset: FunctionOffsets, arguments: &[u8]) -> Chunk<'_> {
    Chunk {
        job: 0,
        task: TaskRef::Function { offset },
        reporting: Reporting::Each,
        items: vec![WireItem {
            index: 0,
            bytes: arguments,
        }],
        lives_spent: Vec::new(),
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
