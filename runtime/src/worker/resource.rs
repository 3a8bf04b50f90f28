//! [`WorkerResource`]: one persistent worker process running a swappable function, called
//! synchronously ([`execute`](WorkerResource::execute)) or asynchronously
//! ([`send`](WorkerResource::send) / [`poll`](WorkerResource::poll) /
//! [`recv`](WorkerResource::recv)).
//!
//! The caller writes its calls straight to the worker's socket. Answers are read under the
//! reader role of [`transport::role`](crate::transport::role): a caller waiting for a result
//! reads the socket itself, so the answer wakes only the caller; a reader thread drains the
//! answers into a queue bounded by the number of unread results while no caller waits, so
//! the worker's writes never wait on the caller, and reaps the worker once its connection
//! ends. `resident.rs` is the child side.

use std::marker::PhantomData;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{ChildSetup, Config};
use crate::error::{Error, Peer, TrySendError};
use crate::parent::output::{CapturedOutput, Sink};
use crate::parent::reaper::ChildProcess;
use crate::pool::{Plain, function, launch};
use crate::protocol::Role;
use crate::transport::Connection;
use crate::transport::frame;

use super::answers::{Inbox, crashed};
pub use super::kill_handle::WorkerKillHandle;
use super::wire::ToResident;
use crate::worker_status::WorkerStatus;

/// Largest frame between a resource and its worker (an item, a result).
const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// How long the worker may take to start and prove its build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long ending a worker may wait for its reader thread (which reaps it).
const END_BOUND: Duration = Duration::from_secs(10);
/// How long a worker whose connection ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How a worker that ended cleanly is described.
const CLEAN_EXIT: &str = "exited with code 0";

/// One persistent worker process that runs a function on the data it is given, in order.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// use std::time::Duration;
/// use skprocess_runtime::WorkerResource;
///
/// fn parse(line: String) -> usize { line.split_whitespace().count() }
/// fn parse_v2(line: String) -> usize { line.len() }
///
/// let mut worker = WorkerResource::new(parse)?;
/// assert_eq!(worker.execute("a b c".to_owned())?, 3);         // sync
/// worker.send("d e".to_owned())?;                              // async, results in order
/// if worker.poll(Duration::from_secs(1))? {
///     assert_eq!(worker.recv()?, 2);
/// }
/// worker.update_fn(parse_v2)?;                                 // same input and output types
/// assert_eq!(worker.execute("abcd".to_owned())?, 4);
/// let status = worker.status()?;                               // measured in the worker
/// println!("up {:?}, busy {:?}, starved {:?}, {} items",
///          status.uptime, status.busy, status.starved, status.items);
/// worker.stop()?;
/// # Ok(()) }
/// ```
///
/// **Errors of the function.** A panic comes back as [`Error::Panicked`] with its text and
/// location, and the worker keeps serving. A function that returns `Result<T, E>` makes `O`
/// that `Result`:
/// `execute` then gives `Result<Result<T, E>, Error>`, the outer error being the worker's
/// (panic, crash), the inner one yours, typed, to match on:
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// fn parse(line: String) -> Result<u64, String> { line.parse().map_err(|_| format!("not a number: {line}")) }
///
/// let mut worker = skprocess_runtime::WorkerResource::new(parse)?;
/// match worker.execute("x".to_owned())? {
///     Ok(n) => println!("{n}"),
///     Err(message) => println!("the function said: {message}"),
/// }
/// # Ok(()) }
/// ```
///
/// **A crashed worker** (killed, segfault, `exit`) is not restarted: every later call fails
/// with [`Error::Crashed`] naming how it ended; start a new resource to go on.
///
/// **Backpressure.** At most [`DEFAULT_UNREAD_LIMIT`](WorkerResource::DEFAULT_UNREAD_LIMIT)
/// results (see
/// [`with_unread_limit`](WorkerResource::with_unread_limit)) may be sent and not yet received;
/// one more [`send`](WorkerResource::send) fails with [`Error::TooManyUnread`], so nothing
/// queues without bound.
///
/// **Ending.** [`stop`](WorkerResource::stop) lets the worker finish what was sent and exit;
/// [`kill`](WorkerResource::kill) and dropping the resource kill it (SIGKILL) and reap
/// it: no worker outlives its resource.
pub struct WorkerResource<I, O> {
    connection: Arc<Connection>,
    child: Arc<ChildProcess>,
    inbox: Arc<Inbox>,
    reader: Option<JoinHandle<()>>,
    /// Calls sent whose result was not received.
    unread: usize,
    unread_limit: usize,
    /// Status answers still to come for asks whose wait ran out: dropped when they arrive,
    /// so a late answer is never taken for a newer one.
    stale_statuses: usize,
    /// What the worker wrote to the streams its setup captures.
    captured: Option<Arc<CapturedOutput>>,
    types: PhantomData<fn(I) -> O>,
}

impl<I, O> WorkerResource<I, O>
where
    I: Serialize + DeserializeOwned,
    O: Serialize + DeserializeOwned,
{
    /// Starts a worker process running `f` (a `fn` item or a closure that captures nothing)
    /// and waits until it is ready.
    pub fn new(f: fn(I) -> O) -> Result<Self, Error> {
        Self::with_unread_limit(f, Self::DEFAULT_UNREAD_LIMIT)
    }

    /// Like [`new`](WorkerResource::new), with at most `limit` results sent and not yet
    /// received (at least 1).
    pub fn with_unread_limit(f: fn(I) -> O, limit: usize) -> Result<Self, Error> {
        Self::start(f, limit, ChildSetup::default())
    }

    /// Like [`new`](WorkerResource::new), with the worker process set up as `setup` says: its
    /// environment, working directory, extra arguments, and where its standard output and
    /// standard error go (a captured stream is read with
    /// [`captured`](WorkerResource::captured)).
    pub fn with_setup(f: fn(I) -> O, setup: ChildSetup) -> Result<Self, Error> {
        Self::start(f, Self::DEFAULT_UNREAD_LIMIT, setup)
    }

    fn start(f: fn(I) -> O, limit: usize, setup: ChildSetup) -> Result<Self, Error> {
        crate::protocol::bootstrap::forbid_unhooked_child();
        let sink = Sink::for_worker(&setup, "worker");
        let captured = sink.captured.clone();
        let config = Config::default()
            .max_frame_bytes(MAX_FRAME)
            .connect_timeout(CONNECT_TIMEOUT)
            .setup(setup);
        let (connection, reader, child) = launch::start(Role::ResidentWorker, &config, sink)?;
        let inbox = Arc::new(Inbox::new(Arc::clone(&connection), reader));
        let reader = spawn_reader(&child, &inbox).inspect_err(|_| {
            child.kill_and_reap();
        })?;
        let mut resource = Self {
            connection,
            child,
            inbox,
            reader: Some(reader),
            unread: 0,
            unread_limit: limit.max(1),
            stale_statuses: 0,
            captured,
            types: PhantomData,
        };
        resource.update_fn(f)?;
        Ok(resource)
    }

    /// Runs the function on `data` in the worker and waits for its output. Fails with
    /// [`Usage::UnreadResults`](crate::error::Usage::UnreadResults) while results of earlier [`send`](WorkerResource::send)s are
    /// not received: they come first.
    pub fn execute(&mut self, data: I) -> Result<O, Error> {
        self.execute_timeout(data, Duration::MAX)
            .and_then(|output| output.ok_or(Error::Usage(crate::error::Usage::NothingPending)))
    }

    /// Like [`execute`](WorkerResource::execute), within `timeout` in all (`Duration::MAX`: no
    /// limit): `Ok(None)` when the output did not come in time — the call still runs, and
    /// its output is the next [`recv`](WorkerResource::recv)'s; [`Error::Full`] when the
    /// worker took none of the data in time (it does not read: stopped, say), and nothing was
    /// sent.
    pub fn execute_timeout(&mut self, data: I, timeout: Duration) -> Result<Option<O>, Error> {
        self.check_alive()?;
        if self.unread > 0 {
            return Err(Error::Usage(crate::error::Usage::UnreadResults {
                unread: self.unread,
            }));
        }
        let deadline = crate::deadline::after(Some(timeout));
        self.send_before(data, deadline).map_err(Error::from)?;
        self.recv_before(deadline)
    }

    /// Sends `data` to the worker without waiting for the output; it comes from
    /// [`recv`](WorkerResource::recv), in the order sent. Fails with
    /// [`Error::TooManyUnread`] when the unread limit is reached. Waits while the worker's
    /// socket is full (see [`send_timeout`](WorkerResource::send_timeout)).
    pub fn send(&mut self, data: I) -> Result<(), Error> {
        self.send_before(data, None).map_err(Error::from)
    }

    /// Like [`send`](WorkerResource::send), giving the data back as [`TrySendError::Full`] when
    /// the worker took none of it within `timeout` (`Duration::MAX`: no limit) — it does not
    /// read, being stopped or busy with a backlog. Once part of the data is out, the call
    /// counts as sent: the rest follows before anything else.
    pub fn send_timeout(&mut self, data: I, timeout: Duration) -> Result<(), TrySendError<I>> {
        self.send_before(data, crate::deadline::after(Some(timeout)))
    }

    fn send_before(
        &mut self,
        data: I,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), TrySendError<I>> {
        if self.unread >= self.unread_limit {
            return Err(TrySendError::Failed(Error::TooManyUnread {
                limit: self.unread_limit,
            }));
        }
        let item = frame::encode(&data).map_err(|e| TrySendError::Failed(e.into()))?;
        match self.tell_before(&ToResident::Call(&item), deadline) {
            Ok(true) => {
                self.unread += 1;
                Ok(())
            }
            Ok(false) => Err(TrySendError::Full(data)),
            Err(error) => Err(TrySendError::Failed(error)),
        }
    }

    /// Waits at most `timeout` for the next result; `true` when [`recv`](WorkerResource::recv)
    /// will return without waiting. `false` at once when nothing was sent.
    pub fn poll(&mut self, timeout: Duration) -> Result<bool, Error> {
        if self.unread == 0 {
            return Ok(false);
        }
        let ready = self
            .inbox
            .wait_for(Some(timeout), |r| (!r.results.is_empty()).then_some(()))?;
        Ok(ready.is_some())
    }

    /// Waits for the next result, in the order the data was sent. Fails with
    /// [`Usage::NothingPending`](crate::error::Usage::NothingPending) when every result was received.
    pub fn recv(&mut self) -> Result<O, Error> {
        self.recv_timeout(Duration::MAX)
            .and_then(|output| output.ok_or(Error::Usage(crate::error::Usage::NothingPending)))
    }

    /// Like [`recv`](WorkerResource::recv), waiting at most `timeout` (`Duration::MAX`: no
    /// limit); `Ok(None)` when the next result did not come in time (it stays next).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<O>, Error> {
        self.recv_before(crate::deadline::after(Some(timeout)))
    }

    fn recv_before(&mut self, deadline: Option<std::time::Instant>) -> Result<Option<O>, Error> {
        if self.unread == 0 {
            return Err(Error::Usage(crate::error::Usage::NothingPending));
        }
        if !self.flush_before(deadline)? {
            return Ok(None);
        }
        let wait = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let next = self.inbox.wait_for(wait, |r| r.results.pop_front())?;
        let Some(outcome) = next else {
            return Ok(None);
        };
        self.unread -= 1;
        let bytes = outcome.map_err(Error::from)?;
        Ok(Some(frame::decode_owned(&bytes)?))
    }

    /// Sends what is left of a call the worker took only in part before an earlier deadline
    /// (no answer can come before it has all of it); `false` when some is left at `deadline`.
    fn flush_before(&self, deadline: Option<std::time::Instant>) -> Result<bool, Error> {
        if !self.connection.has_unsent() {
            return Ok(true);
        }
        self.check_alive()?;
        Ok(self.connection.flush_before(deadline)?)
    }

    /// Replaces the worker's function with `f` (the same input and output types); data sent
    /// from now on runs `f`. Waits while the worker's socket is full (see
    /// [`update_fn_timeout`](WorkerResource::update_fn_timeout)).
    pub fn update_fn(&mut self, f: fn(I) -> O) -> Result<(), Error> {
        self.update_fn_timeout(f, Duration::MAX).map(drop)
    }

    /// Like [`update_fn`](WorkerResource::update_fn), waiting at most `timeout`
    /// (`Duration::MAX`: no limit) for the worker to take the change: `Ok(true)` when it is
    /// sent (data sent from now on runs `f`), `Ok(false)` when the worker took none of it in
    /// time (it does not read: stopped, or busy with a backlog) and nothing changed.
    pub fn update_fn_timeout(&mut self, f: fn(I) -> O, timeout: Duration) -> Result<bool, Error> {
        let offset = function::offsets::<Plain, I, O>(f);
        self.tell_before(
            &ToResident::SetFunction { offset },
            crate::deadline::after(Some(timeout)),
        )
    }

    /// Asks the worker what it measured: uptime, time busy in the function, time starved
    /// waiting for data, items run. It answers once the data sent before is done.
    pub fn status(&mut self) -> Result<WorkerStatus, Error> {
        self.status_timeout(Duration::MAX)
            .map(Option::unwrap_or_default)
    }

    /// Like [`status`](WorkerResource::status), waiting at most `timeout` for the answer
    /// (`Duration::MAX`: no limit); `Ok(None)` when it did not come in time (a late answer is
    /// dropped, never taken for a later ask's).
    pub fn status_timeout(&mut self, timeout: Duration) -> Result<Option<WorkerStatus>, Error> {
        let deadline = crate::deadline::after(Some(timeout));
        if !self.tell_before(&ToResident::Status, deadline)? {
            return Ok(None);
        }
        let mut stale = self.stale_statuses;
        let wait = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let status = self.inbox.wait_for(wait, |r| {
            while stale > 0 && r.statuses.pop_front().is_some() {
                stale -= 1;
            }
            r.statuses.pop_front()
        });
        self.stale_statuses = stale;
        match status? {
            Some(status) => Ok(Some(WorkerStatus::from_wire(status))),
            None => {
                self.stale_statuses += 1;
                Ok(None)
            }
        }
    }
}

impl<I, O> WorkerResource<I, O> {
    /// Most results sent and not yet received, by default.
    pub const DEFAULT_UNREAD_LIMIT: usize = 1024;

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// What the worker wrote to the streams its setup captures
    /// ([`Stdio::Capture`](crate::Stdio::Capture) in
    /// [`with_setup`](WorkerResource::with_setup)); `None` when it captures neither.
    pub fn captured(&self) -> Option<Arc<CapturedOutput>> {
        self.captured.clone()
    }

    /// A handle that kills the worker from any thread, also while this resource waits in a
    /// call on another (see [`WorkerKillHandle`]).
    pub fn kill_handle(&self) -> WorkerKillHandle {
        WorkerKillHandle::new(Arc::clone(&self.connection), Arc::clone(&self.child))
    }

    /// Stops the worker and waits without limit: it finishes the data already sent (its
    /// results are dropped) and exits, and is reaped; fails with [`Error::Crashed`] when it
    /// did not exit cleanly.
    pub fn stop(self) -> Result<(), Error> {
        self.stop_timeout(Duration::MAX).map(drop)
    }

    /// Like [`stop`](WorkerResource::stop), waiting at most `timeout` (`Duration::MAX`: no
    /// limit): `Ok(true)` when the worker finished the data already sent and exited in time;
    /// `Ok(false)` when it did not, and was killed (SIGKILL) and reaped instead.
    pub fn stop_timeout(mut self, timeout: Duration) -> Result<bool, Error> {
        let deadline = crate::deadline::after(Some(timeout));
        // The end travels as a message (a named pipe has no half-close, and Windows refuses
        // one); on Unix the writing half is shut as well, so a worker that stopped reading
        // sees the end too. A worker that already ended takes nothing: its end is what is
        // reported below.
        let told = self.tell_before(&ToResident::Finish, deadline);
        if matches!(told, Ok(false)) {
            self.kill_and_reap();
            return Ok(false);
        }
        let _ = self.connection.stream().shutdown_write();
        if !self.await_end(deadline) {
            self.kill_and_reap();
            return Ok(false);
        }
        match self.inbox.lock().ended.as_deref() {
            Some(CLEAN_EXIT) | None => Ok(true),
            Some(status) => Err(crashed(status)),
        }
    }

    /// Kills the worker now (SIGKILL) and reaps it; results not received are lost.
    pub fn kill(mut self) {
        self.kill_and_reap();
    }

    /// Fails with [`Error::Crashed`] once the worker ended.
    fn check_alive(&self) -> Result<(), Error> {
        match &self.inbox.lock().ended {
            Some(status) => Err(crashed(status)),
            None => Ok(()),
        }
    }

    /// Sends `message` unless the worker takes none of it by `deadline` (`Ok(false)`); a
    /// message begun is committed, its rest sent before anything else.
    fn tell_before(
        &self,
        message: &ToResident<'_>,
        deadline: Option<std::time::Instant>,
    ) -> Result<bool, Error> {
        self.check_alive()?;
        self.connection
            .send_message_before(message, deadline)
            .map_err(
                |error| match self.inbox.wait_for(Some(END_BOUND), |_| None::<()>) {
                    Err(crashed) => crashed,
                    Ok(_) => Error::from(error).with_peer(Peer::Worker),
                },
            )
    }

    fn kill_and_reap(&mut self) {
        self.child.kill();
        self.connection.shutdown();
        self.end_reader();
    }

    /// Waits (bounded) for the reader thread, which reaps the worker once its connection
    /// ended and then records the end in the inbox; past the bound the worker is killed and
    /// the thread let go.
    fn end_reader(&mut self) {
        if !self.await_end(crate::deadline::after(Some(END_BOUND))) {
            self.child.kill();
            self.reader = None;
        }
    }

    /// Waits until `deadline` for the reader thread to record the worker's end (it reaps the
    /// worker first), then joins the thread; `false` when the end did not come in time (the
    /// thread still runs). `true` at once when there is no reader left.
    fn await_end(&mut self, deadline: Option<std::time::Instant>) -> bool {
        if self.reader.is_none() {
            return true;
        }
        let mut received = self.inbox.lock();
        while received.ended.is_none() {
            match crate::deadline::wait(&self.inbox.arrived, received, deadline) {
                Ok(next) => received = next,
                Err(_) => return false,
            }
        }
        drop(received);
        // The thread ends right after recording the end.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        true
    }
}

impl<I, O> Drop for WorkerResource<I, O> {
    /// Kills the worker (SIGKILL) and reaps it, unless it was stopped or killed.
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.kill_and_reap();
        }
    }
}

impl<I, O> std::fmt::Debug for WorkerResource<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerResource")
            .field("pid", &self.pid())
            .field("unread", &self.unread)
            .finish()
    }
}

fn spawn_reader(child: &Arc<ChildProcess>, inbox: &Arc<Inbox>) -> Result<JoinHandle<()>, Error> {
    let (child, inbox) = (Arc::clone(child), Arc::clone(inbox));
    let handle = std::thread::Builder::new()
        .name("skprocess-worker-resource".into())
        .spawn(move || {
            if !inbox.read_in_background() {
                child.kill();
            }
            let status = child.reap(EXIT_GRACE).describe();
            inbox.lock().ended = Some(status);
            inbox.arrived.notify_all();
        })?;
    Ok(handle)
}
