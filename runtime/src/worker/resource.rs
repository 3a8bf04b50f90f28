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

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::parent::spawn::command;
use crate::pool::{Plain, function, launch};
use crate::protocol::Role;
use crate::protocol::pool::ItemFailure;
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::rendezvous::{self, Rendezvous};
use crate::transport::role::{ReaderRole, backoff, readable};

use super::status::WorkerStatus;
use super::wire::{FromResident, ToResident, WireStatus};

/// Largest frame between a resource and its worker (an item, a result).
const MAX_FRAME: u32 = 64 * 1024 * 1024;
/// How long the worker may take to start and prove its build.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long ending a worker may wait for its reader thread (which reaps it).
const END_BOUND: Duration = Duration::from_secs(10);
/// Longest the reader thread waits for the rest of an answer once it holds the role.
const ANSWER_REST_WAIT: Duration = Duration::from_millis(1);
/// Longest the reader thread waits at a time while a caller holds the role.
const HELD_WAIT: Duration = Duration::from_millis(50);
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
/// worker.join()?;
/// # Ok(()) }
/// ```
///
/// **Errors of the function.** A panic comes back as [`Error::Panicked`] with its text, and
/// the worker keeps serving. A function that returns `Result<T, E>` makes `O` that `Result`:
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
/// **Ending.** [`join`](WorkerResource::join) lets the worker finish what was sent and exit;
/// [`terminate`](WorkerResource::terminate) and dropping the resource kill it (SIGKILL) and reap
/// it: no worker outlives its resource.
pub struct WorkerResource<I, O> {
    connection: Arc<Connection>,
    child: Arc<Mutex<Option<Child>>>,
    pid: u32,
    inbox: Arc<Inbox>,
    reader: Option<JoinHandle<()>>,
    /// Calls sent whose result was not received.
    unread: usize,
    unread_limit: usize,
    types: PhantomData<fn(I) -> O>,
}

/// What the reader thread received, and whether the worker ended.
#[derive(Default)]
struct Received {
    results: VecDeque<Result<Vec<u8>, ItemFailure>>,
    statuses: VecDeque<WireStatus>,
    /// How the worker ended, once it did.
    ended: Option<String>,
    /// Bumped each time the reader role is let go, so a caller that found it taken looks
    /// again.
    turns: u64,
}

/// What the holder of the reader role reads with.
struct Answers {
    frames: FrameReader,
    /// The read timeout last set on the connection.
    read_timeout: Option<Duration>,
    /// Once the connection is over: whether it ended cleanly (`false`: the worker broke the
    /// protocol, and is killed).
    over: Option<bool>,
}

/// How a turn at the connection ended.
#[derive(PartialEq, Eq)]
enum Turn {
    Read,
    TimedOut,
    Over,
}

struct Inbox {
    received: Mutex<Received>,
    arrived: Condvar,
    connection: Arc<Connection>,
    role: ReaderRole<Answers>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (at most `timeout`, or as long as the worker lives) until `take` finds what it
    /// looks for; fails when the worker ended first. Reads the connection itself while no
    /// other thread does.
    fn wait_for<T>(
        &self,
        timeout: Option<Duration>,
        mut take: impl FnMut(&mut Received) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut seen = None;
        let mut timed_out = false;
        loop {
            let mut received = self.lock();
            loop {
                if let Some(found) = take(&mut received) {
                    return Ok(Some(found));
                }
                if let Some(status) = &received.ended {
                    return Err(crashed(status));
                }
                let left = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None if timeout.is_some() => Duration::ZERO,
                    None => Duration::from_secs(3600),
                };
                if timed_out || (left.is_zero() && timeout.is_some()) {
                    return Ok(None);
                }
                if seen != Some(received.turns) {
                    break;
                }
                received = self
                    .arrived
                    .wait_timeout(received, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            seen = Some(received.turns);
            drop(received);
            timed_out = self.caller_turn(deadline) == Some(Turn::TimedOut);
        }
    }

    /// A caller's turn: reads until one answer is queued, the connection is over or
    /// `deadline` passes; `None` when another thread holds the role.
    fn caller_turn(&self, deadline: Option<Instant>) -> Option<Turn> {
        let mut answers = self.role.try_take()?;
        // The previous holder may have queued an answer after this caller looked.
        let queued = {
            let received = self.lock();
            !received.results.is_empty() || !received.statuses.is_empty()
        };
        let turn = match queued || answers.over.is_some() {
            true => Turn::Read,
            false => self.read(&mut answers, deadline, true),
        };
        if turn == Turn::Over {
            // The reader thread ends the worker: make sure it sees the end.
            self.connection.shutdown();
        }
        drop(answers);
        self.role.released();
        self.role_released();
        Some(turn)
    }

    /// The role was let go: callers that found it taken look again.
    fn role_released(&self) {
        let mut received = self.lock();
        received.turns = received.turns.wrapping_add(1);
        drop(received);
        self.arrived.notify_all();
    }

    /// Reads answers until `deadline`: a caller's turn (`until_answer`) until one is queued,
    /// the reader thread's until nothing whole is left buffered.
    fn read(&self, answers: &mut Answers, deadline: Option<Instant>, until_answer: bool) -> Turn {
        let mut got = false;
        loop {
            if answers.over.is_some() {
                return Turn::Over;
            }
            if !answers.frames.has_buffered_frame() {
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                // A zero timeout would mean none at all to the socket.
                if timeout.is_some_and(|t| t.is_zero()) {
                    return Turn::TimedOut;
                }
                if answers.read_timeout != timeout {
                    if self.connection.stream().set_read_timeout(timeout).is_err() {
                        answers.over = Some(false);
                        continue;
                    }
                    answers.read_timeout = timeout;
                }
            }
            match answers.frames.read_frame(&mut self.connection.stream()) {
                Ok(Some(frame)) => match frame::decode::<FromResident<'_>>(frame.bytes()) {
                    Ok(answer) => {
                        self.queue(answer);
                        got = true;
                    }
                    Err(_) => answers.over = Some(false),
                },
                Ok(None) => answers.over = Some(true),
                Err(e) if e.is_timeout() => return Turn::TimedOut,
                Err(_) => answers.over = Some(false),
            }
            if answers.over.is_none()
                && !answers.frames.has_buffered_frame()
                && (got || !until_answer)
            {
                return Turn::Read;
            }
        }
    }

    fn queue(&self, answer: FromResident<'_>) {
        let mut received = self.lock();
        match answer {
            FromResident::Output(bytes) => received.results.push_back(Ok(bytes.to_vec())),
            FromResident::Failed(failure) => received.results.push_back(Err(failure)),
            FromResident::Status(status) => received.statuses.push_back(status),
        }
        drop(received);
        self.arrived.notify_all();
    }

    /// The reader thread: reads while no caller does, until the connection is over; returns
    /// whether it ended cleanly.
    fn read_in_background(&self) -> bool {
        let mut held_in_a_row = 0u32;
        loop {
            if self.role.is_held() {
                self.role
                    .wait_released(backoff(held_in_a_row, HELD_WAIT), || false);
                held_in_a_row = held_in_a_row.saturating_add(1);
                continue;
            }
            held_in_a_row = 0;
            let waiting = self
                .role
                .try_take()
                .is_some_and(|a| a.over.is_some() || a.frames.has_buffered_frame());
            match readable(self.connection.stream(), None) {
                _ if waiting => {}
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return false,
            }
            // Taken meanwhile: that caller reads these answers.
            let Some(mut answers) = self.role.try_take() else {
                continue;
            };
            let nothing_yet = answers.over.is_none()
                && !answers.frames.has_buffered_frame()
                && !readable(self.connection.stream(), Some(Duration::ZERO)).unwrap_or(true);
            if nothing_yet {
                // A caller read it already.
                drop(answers);
                self.role_released();
                continue;
            }
            let rest_by = Instant::now().checked_add(ANSWER_REST_WAIT);
            let turn = self.read(&mut answers, rest_by, false);
            let over = answers.over;
            drop(answers);
            self.role_released();
            if turn == Turn::Over {
                return over.unwrap_or(false);
            }
        }
    }
}

fn crashed(status: &str) -> Error {
    Error::Crashed {
        status: status.to_owned(),
        run: 0,
    }
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
        crate::child::bootstrap::forbid_unhooked_child();
        let (connection, reader, child) = start()?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(Some(child)));
        let inbox = Arc::new(Inbox {
            received: Mutex::default(),
            arrived: Condvar::new(),
            connection: Arc::clone(&connection),
            role: ReaderRole::new(Answers {
                frames: reader,
                read_timeout: None,
                over: None,
            }),
        });
        let reader = spawn_reader(&child, &inbox).inspect_err(|_| {
            launch::kill(&child);
            launch::reap(&child);
        })?;
        let mut resource = Self {
            connection,
            child,
            pid,
            inbox,
            reader: Some(reader),
            unread: 0,
            unread_limit: limit.max(1),
            types: PhantomData,
        };
        resource.update_fn(f)?;
        Ok(resource)
    }

    /// Runs the function on `data` in the worker and waits for its output. Fails with
    /// [`Error::UnreadResults`] while results of earlier [`send`](WorkerResource::send)s are
    /// not received: they come first.
    pub fn execute(&mut self, data: I) -> Result<O, Error> {
        self.check_alive()?;
        if self.unread > 0 {
            return Err(Error::UnreadResults {
                unread: self.unread,
            });
        }
        self.send(data)?;
        self.recv()
    }

    /// Sends `data` to the worker without waiting; its output comes from
    /// [`recv`](WorkerResource::recv), in the order sent. Fails with
    /// [`Error::TooManyUnread`] when the unread limit is reached.
    pub fn send(&mut self, data: I) -> Result<(), Error> {
        if self.unread >= self.unread_limit {
            return Err(Error::TooManyUnread {
                limit: self.unread_limit,
            });
        }
        let item = frame::encode(&data)?;
        self.tell(&ToResident::Call(&item))?;
        self.unread += 1;
        Ok(())
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
    /// [`Error::NothingPending`] when every result was received.
    pub fn recv(&mut self) -> Result<O, Error> {
        if self.unread == 0 {
            return Err(Error::NothingPending);
        }
        let next = self.inbox.wait_for(None, |r| r.results.pop_front())?;
        let Some(outcome) = next else {
            return Err(Error::NothingPending);
        };
        self.unread -= 1;
        let bytes = outcome.map_err(Error::from)?;
        Ok(frame::decode_owned(&bytes)?)
    }

    /// Replaces the worker's function with `f` (the same input and output types); data sent
    /// from now on runs `f`.
    pub fn update_fn(&mut self, f: fn(I) -> O) -> Result<(), Error> {
        let offset = function::offsets::<Plain, I, O>(f);
        self.tell(&ToResident::SetFunction { offset })
    }

    /// Asks the worker what it measured: uptime, time busy in the function, time starved
    /// waiting for data, items run. It answers once the data sent before is done.
    pub fn status(&mut self) -> Result<WorkerStatus, Error> {
        self.tell(&ToResident::Status)?;
        let status = self.inbox.wait_for(None, |r| r.statuses.pop_front())?;
        Ok(WorkerStatus::from_wire(status.unwrap_or_default()))
    }
}

impl<I, O> WorkerResource<I, O> {
    /// Most results sent and not yet received, by default.
    pub const DEFAULT_UNREAD_LIMIT: usize = 1024;

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the worker finish the data already sent (its results are dropped), waits until it
    /// exited, and reaps it; fails with [`Error::Crashed`] when it did not exit cleanly.
    pub fn join(mut self) -> Result<(), Error> {
        let _ = self.connection.stream().shutdown_write();
        self.end_reader();
        match self.inbox.lock().ended.as_deref() {
            Some(CLEAN_EXIT) | None => Ok(()),
            Some(status) => Err(crashed(status)),
        }
    }

    /// Kills the worker now (SIGKILL) and reaps it; results not received are lost.
    pub fn terminate(mut self) {
        self.kill_and_reap();
    }

    /// Fails with [`Error::Crashed`] once the worker ended.
    fn check_alive(&self) -> Result<(), Error> {
        match &self.inbox.lock().ended {
            Some(status) => Err(crashed(status)),
            None => Ok(()),
        }
    }

    fn tell(&self, message: &ToResident<'_>) -> Result<(), Error> {
        self.check_alive()?;
        self.connection.send(message).map_err(|error| {
            match self.inbox.wait_for(Some(END_BOUND), |_| None::<()>) {
                Err(crashed) => crashed,
                Ok(_) => error.into(),
            }
        })
    }

    fn kill_and_reap(&mut self) {
        launch::kill(&self.child);
        self.connection.shutdown();
        self.end_reader();
    }

    /// Waits (bounded) for the reader thread, which reaps the worker once its connection ended.
    fn end_reader(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let deadline = Instant::now().checked_add(END_BOUND);
        while !reader.is_finished() && deadline.is_some_and(|d| Instant::now() < d) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if reader.is_finished() {
            let _ = reader.join();
        } else {
            launch::kill(&self.child);
        }
    }
}

impl<I, O> Drop for WorkerResource<I, O> {
    /// Kills the worker (SIGKILL) and reaps it, unless it was joined or terminated.
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.kill_and_reap();
        }
    }
}

impl<I, O> std::fmt::Debug for WorkerResource<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerResource")
            .field("pid", &self.pid)
            .field("unread", &self.unread)
            .finish()
    }
}

/// Spawns the worker and waits for its `Ready`.
fn start() -> Result<(Arc<Connection>, FrameReader, Child), Error> {
    let token = rendezvous::random_hex(16)?;
    let rendezvous = Rendezvous::bind(None)?;
    let mut child = command(&rendezvous, &token, MAX_FRAME, None)?
        .spawn()
        .map_err(Error::Spawn)?;
    let deadline = crate::deadline::after(Some(CONNECT_TIMEOUT));
    let identity = (Role::ResidentWorker, child.id());
    let exited = || child.try_wait().ok()?;
    match launch::handshake(rendezvous, &token, MAX_FRAME, deadline, identity, exited) {
        Ok((connection, reader)) => Ok((connection, reader, child)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

fn spawn_reader(
    child: &Arc<Mutex<Option<Child>>>,
    inbox: &Arc<Inbox>,
) -> Result<JoinHandle<()>, Error> {
    let (child, inbox) = (Arc::clone(child), Arc::clone(inbox));
    let handle = std::thread::Builder::new()
        .name("skprocess-worker-resource".into())
        .spawn(move || {
            if !inbox.read_in_background() {
                launch::kill(&child);
            }
            let status = launch::reap(&child);
            inbox.lock().ended = Some(status);
            inbox.arrived.notify_all();
        })?;
    Ok(handle)
}
