//! Workers: one plain function run once on a process of its own ([`run`]) or on a thread
//! ([`run_thread`]), with a [`Worker`] handle to wait for its result or end it.
//!
//! A process worker is the pool's worker child (`pool/worker.rs`): the same re-executed
//! binary, the same build-identity handshake, the same `fn` pointer and trampoline offsets
//! (`pool/function.rs`). It receives one isolated chunk of one item — its arguments — so its
//! result is sent the moment it is ready, then the connection is closed and the child exits.
//! `process.rs` is the parent side of that exchange; both kinds of worker leave their outcome
//! in the runtime's one one-shot ([`Completion`]).

mod answers;
mod kill_handle;
mod process;
pub(crate) mod resident;
mod resource;
mod wire;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::completion::{Completion, Take};
use crate::config::ChildSetup;
use crate::error::Error;
use crate::message::Message;
use crate::parent::output::CapturedOutput;
use crate::pool::{Mode, Pool, Star};
pub use resource::{WorkerKillHandle, WorkerResource};

/// How long [`Worker::kill`] and dropping a process worker wait for it to be reaped.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// Starts a process of this executable running `f` with the fields of the tuple `args` as its
/// arguments, and returns at once with its handle.
///
/// `f` is a `fn` pointer: a closure that captures nothing, or a `fn` item cast to one (`add as
/// fn(u64, u64) -> u64`: its arity is only known from `args`, which rustc reads after `f`); a
/// capturing closure does not compile — send what it needs in `args`. The arguments and the result cross the process
/// boundary, so they implement `Serialize` and `Deserialize`. The child is the same
/// executable started again (see [`init`](crate::init)); it proves it is the same build
/// before it runs anything, and it exits when this process is gone.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let worker = skprocess_runtime::run(add as fn(u64, u64) -> u64, (2, 3))?;
/// assert_eq!(worker.join()?, 5);
/// let worker = skprocess_runtime::run(|a: u64, b: u64| a * b, (2, 3))?;
/// assert_eq!(worker.join()?, 6);
/// # Ok(()) }
/// ```
///
/// A panic in `f` is [`Error::Panicked`] with its text and location; a process that dies (a
/// signal, an `exit`) is [`Error::Crashed`] naming the signal or the exit code.
pub fn run<Args, R>(f: <Star as Mode<Args, R>>::Function, args: Args) -> Result<Worker<R>, Error>
where
    Star: Mode<Args, R>,
    Args: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    run_with(f, args, ChildSetup::default())
}

/// Like [`run`], with the child process set up as `setup` says: its environment, working
/// directory, extra arguments, and where its standard output and standard error go (a
/// captured stream is read with [`Worker::captured`]).
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// use skprocess_runtime::{ChildSetup, Stdio};
///
/// fn home() -> String { std::env::var("APP_HOME").unwrap_or_default() }
///
/// let setup = ChildSetup::default().env("APP_HOME", "/srv/app").stdout(Stdio::Capture);
/// let worker = skprocess_runtime::run_with(home as fn() -> String, (), setup)?;
/// assert_eq!(worker.join()?, "/srv/app");
/// # Ok(()) }
/// ```
pub fn run_with<Args, R>(
    f: <Star as Mode<Args, R>>::Function,
    args: Args,
    setup: ChildSetup,
) -> Result<Worker<R>, Error>
where
    Star: Mode<Args, R>,
    Args: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let (process, completion) = process::start::<Args, R>(f, &args, setup)?;
    Ok(Worker {
        completion,
        process: Some(process),
        result: PhantomData,
    })
}

/// Runs `f` with the fields of the tuple `args` on a new thread of this process, with the
/// same handle as [`run`]; nothing is serialized. A thread cannot be killed:
/// [`Worker::kill`] fails with [`Usage::ThreadNotKillable`](crate::error::Usage::ThreadNotKillable).
///
/// ```
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// let worker = skprocess_runtime::run_thread(add as fn(u64, u64) -> u64, (2, 3))?;
/// assert_eq!(worker.join()?, 5);
/// # Ok(()) }
/// ```
pub fn run_thread<Args, R>(
    f: <Star as Mode<Args, R>>::Function,
    args: Args,
) -> Result<Worker<R>, Error>
where
    Star: Mode<Args, R>,
    Args: Send + 'static,
    R: Send + 'static,
{
    let completion = Completion::new();
    let slot = Arc::clone(&completion);
    std::thread::Builder::new()
        .name("skprocess-worker".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                <Star as Mode<Args, R>>::call(f, args)
            }));
            slot.complete(outcome.map_err(|payload| Error::from(crate::panics::caught(&*payload))));
        })?;
    Ok(Worker {
        completion,
        process: None,
        result: PhantomData,
    })
}

/// Maps `f` over `items` on a pool of one worker process per core started for this call, and
/// returns the outputs in input order; the pool closes when the call returns. For repeated
/// maps, keep a [`Pool`] instead: its workers start once.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// fn square(x: u64) -> u64 { x * x }
///
/// assert_eq!(skprocess_runtime::map(square, 1..=4)?, [1, 4, 9, 16]);
/// # Ok(()) }
/// ```
pub fn map<T, R, I>(f: fn(T) -> R, items: I) -> Result<Vec<R>, Error>
where
    I: IntoIterator<Item = T>,
    T: Message,
    R: Message,
{
    Pool::new(num_cpus())?.map(f, items)
}

/// The number of cores this process may use ([`std::thread::available_parallelism`]); 1
/// when it cannot be told.
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A function running on a process ([`run`]) or a thread ([`run_thread`]): wait for its result,
/// ask whether it still runs, or kill it.
///
/// `Worker` is `Send + Sync`; [`wait_timeout`](Worker::wait_timeout),
/// [`is_alive`](Worker::is_alive) and [`kill`](Worker::kill) take `&self` and may be called
/// from several threads at once.
///
/// Dropping a process worker without joining it kills its process (SIGKILL) and reaps it:
/// a worker never outlives its handle. Dropping a thread worker detaches the thread.
pub struct Worker<R> {
    completion: Arc<Completion<Result<R, Error>>>,
    process: Option<process::ProcessWorker>,
    result: PhantomData<fn() -> R>,
}

impl<R> Worker<R> {
    /// Waits until the worker ends and returns its result, or how it failed.
    pub fn join(self) -> Result<R, Error> {
        loop {
            match self.completion.take_until(None) {
                Take::Value(outcome) => return outcome,
                Take::Taken => return Err(Error::Usage(crate::error::Usage::AlreadyJoined)),
                Take::Pending => {}
            }
        }
    }

    /// Waits at most `timeout` for the worker to end: `Ok(Some(result))` once it ended,
    /// `Ok(None)` while it still runs (like [`Child::try_wait`](std::process::Child::try_wait)),
    /// `Err` when it failed. Once the result was taken, further calls fail with
    /// [`Usage::AlreadyJoined`](crate::error::Usage::AlreadyJoined).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>, Error> {
        match self
            .completion
            .take_until(crate::deadline::after(Some(timeout)))
        {
            Take::Value(outcome) => outcome.map(Some),
            Take::Pending => Ok(None),
            Take::Taken => Err(Error::Usage(crate::error::Usage::AlreadyJoined)),
        }
    }

    /// Waits until the worker ended, however it ended. Does not take the result.
    pub fn wait(&self) {
        self.completion.wait_until(None);
    }

    /// Waits at most `timeout` (`Duration::MAX`: no limit) for the worker to end; `true` once
    /// it has ended, however it ended. Does not take the result.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.completion
            .wait_until(crate::deadline::after(Some(timeout)))
    }

    /// Whether the worker still runs (a process worker runs until it was reaped).
    pub fn is_alive(&self) -> bool {
        !self.completion.is_done()
    }

    /// Kills a process worker (SIGKILL) and waits until it was reaped; its result is then
    /// [`Error::Killed`]. Killing a worker that already ended does nothing. A thread cannot be
    /// killed: this fails with [`Usage::ThreadNotKillable`](crate::error::Usage::ThreadNotKillable).
    pub fn kill(&self) -> Result<(), Error> {
        let Some(process) = &self.process else {
            return Err(Error::Usage(crate::error::Usage::ThreadNotKillable));
        };
        process.kill();
        if self
            .completion
            .wait_until(crate::deadline::after(Some(REAP_BOUND)))
        {
            Ok(())
        } else {
            Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the killed worker was not reaped in time",
            )))
        }
    }

    /// The worker's process id; `None` for a thread worker.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(process::ProcessWorker::pid)
    }

    /// What the worker's process wrote to the streams its setup captures
    /// ([`Stdio::Capture`](crate::Stdio::Capture) in [`run_with`]); `None` when it captures
    /// neither, and for a thread worker. After [`join`](Worker::join), call
    /// [`CapturedOutput::wait_timeout`] to know the process closed its streams.
    pub fn captured(&self) -> Option<Arc<CapturedOutput>> {
        self.process
            .as_ref()
            .and_then(process::ProcessWorker::captured)
    }
}

impl<R> Drop for Worker<R> {
    /// Kills a process worker that still runs and reaps it.
    fn drop(&mut self) {
        if let Some(process) = &self.process {
            if !self.completion.is_done() {
                process.kill();
            }
            process.join_reader(&self.completion, crate::deadline::after(Some(REAP_BOUND)));
        }
    }
}

impl<R> std::fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.pid())
            .field("alive", &self.is_alive())
            .finish()
    }
}
