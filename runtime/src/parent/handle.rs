//! The parent's handle on a running process.
//!
//! Every method reads or waits on state that the supervisor's driver keeps up to date; none
//! spawns or reaps. Only `listen` reads the socket, and only while it holds the reader role
//! (see [`reader`](crate::parent::supervisor::reader)): other threads sharing the handle
//! never wait for it.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::deadline;
use crate::error::{Error, TellError};
use crate::parent::output::CapturedOutput;
use crate::parent::shared::{Control, Ending, ProcessShared};
use crate::parent::spawn;
use crate::parent::supervisor::driver;
use crate::parent::supervisor::handoff::Turn;
use crate::parent::supervisor::machine::Outcome;
use crate::parent::supervisor::reader;
use crate::process_types::ProcessTypes;
use crate::protocol::bootstrap;
use crate::protocol::credits::Acquired;
use crate::protocol::lifecycle::Resume;
use crate::protocol::tell_prefix;
use crate::round_trip;
use crate::timing::ProcessTimers;
use crate::transport::frame;

thread_local! {
    /// The encoding buffer of `tell`, reused by each thread that tells.
    static TELL_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where a running process stands, from [`Handle::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Time since `start`.
    pub uptime: Duration,
    /// Time the child spent inside hooks.
    pub busy: Duration,
    /// Time the child spent waiting in [`Ctx::listen`](crate::Ctx::listen).
    pub listening: Duration,
    /// Iterations completed.
    pub completed_runs: u64,
    /// Attempts left, the current one included.
    pub lives_left: u32,
    /// How many times the child was restarted after a crash or timeout.
    pub restarts: u32,
    /// Whether a child process is running right now.
    pub alive: bool,
}

/// A process running in a child.
///
/// `Handle` is `Send` and `Sync`: share it by reference (or in an `Arc`) between threads;
/// `listen`, `tell`, `status` and the rest may be called from several threads at once.
/// Dropping the handle kills a child whose lifecycle has not ended, like [`kill`](Handle::kill).
pub struct Handle<P: ProcessTypes> {
    shared: Arc<ProcessShared>,
    _process: PhantomData<fn() -> P>,
}

impl<P: ProcessTypes> Handle<P> {
    /// Spawns a child, authenticates it and hands it the process. See [`Process::start_with`](crate::Process::start_with).
    pub(crate) fn spawn(process: P, config: Config) -> Result<Self, Error> {
        bootstrap::forbid_unhooked_child();
        config.validate()?;
        let state = round_trip::encode(&process)?;
        spawn::check_state_size(&state, config.max_frame_bytes)?;
        let shared = Arc::new(ProcessShared::new(P::KEY, P::HAS_ERROR_HOOK, config));
        let resume = Resume {
            lives_left: shared.config.lives,
            outbox_credits: shared.config.outbox_capacity,
            ..Resume::default()
        };
        let connection = spawn::launch(&shared, &state, resume, &ProcessTimers::default())?;
        shared.install_connection(Arc::clone(&connection));
        if let Err(e) = driver::start(Arc::clone(&shared), state, connection) {
            let _ = shared.kill();
            return Err(Error::Io(e));
        }
        Ok(Self {
            shared,
            _process: PhantomData,
        })
    }

    /// What the process's children wrote to the streams its configuration captures
    /// ([`Stdio::Capture`](crate::Stdio::Capture) in [`Config::stdout`] or
    /// [`Config::stderr`]); `None` when it captures neither. The value stays readable after
    /// [`result`](Handle::result): call [`CapturedOutput::wait_timeout`] then to know every
    /// child closed its streams.
    pub fn captured(&self) -> Option<Arc<CapturedOutput>> {
        self.shared.captured.clone()
    }

    /// The OS process id of the current child (it changes when the child is restarted).
    pub fn pid(&self) -> u32 {
        self.shared.slot().pid
    }

    /// Sends a message the child reads with [`Ctx::listen`](crate::Ctx::listen), waiting while
    /// the child's inbox is full ([`Config::inbox_capacity`]).
    pub fn tell(&self, message: P::Inbox) -> Result<(), Error> {
        self.send(message, None).map_err(Error::from)
    }

    /// Like [`tell`](Handle::tell), but never waits: a full inbox gives the message back in
    /// [`TellError::Full`].
    pub fn try_tell(&self, message: P::Inbox) -> Result<(), TellError<P::Inbox>> {
        self.send(message, Some(Instant::now()))
    }

    /// Like [`tell`](Handle::tell), but waits at most `timeout` for room in the inbox.
    pub fn tell_timeout(
        &self,
        message: P::Inbox,
        timeout: Duration,
    ) -> Result<(), TellError<P::Inbox>> {
        self.send(message, deadline::after(Some(timeout)))
    }

    fn send(
        &self,
        message: P::Inbox,
        deadline: Option<Instant>,
    ) -> Result<(), TellError<P::Inbox>> {
        TELL_BUFFER.with_borrow_mut(|payload| {
            frame::encode_into(&message, payload)
                .map_err(|e| TellError::Failed(round_trip::encode_failed::<P::Inbox>(e)))?;
            round_trip::check_encoded::<P::Inbox>(payload).map_err(TellError::Failed)?;
            let (prefix, used) = tell_prefix(payload.len());
            let size = used + payload.len();
            frame::check_len(size, self.shared.config.max_frame_bytes)
                .map_err(|e| TellError::Failed(e.into()))?;
            match self.shared.tell_credits.acquire(deadline) {
                Acquired::Granted => {}
                Acquired::Full => return Err(TellError::Full(message)),
                Acquired::Closed => return Err(TellError::Failed(Error::Disconnected)),
            }
            let connection = self
                .shared
                .connection(deadline)
                .map_err(TellError::Failed)?;
            match connection.send_with_payload_before(&prefix[..used], payload, deadline) {
                Ok(true) => {
                    self.shared.note_unsent(&connection);
                    Ok(())
                }
                Ok(false) => {
                    // The child stopped reading (it is stopped, or stuck): nothing was sent.
                    self.shared.tell_credits.grant(1);
                    Err(TellError::Full(message))
                }
                Err(error) => Err(TellError::Failed(error.into())),
            }
        })
    }

    /// Waits up to `timeout` (`None`: until one arrives) for a message from the child.
    ///
    /// `Ok(None)` means the time ran out; [`Error::Disconnected`] means the lifecycle is over
    /// and every message the child sent has been read. `Duration::MAX` waits without limit.
    pub fn listen(&self, timeout: impl Into<Option<Duration>>) -> Result<Option<P::Outbox>, Error> {
        let deadline = deadline::after(timeout.into());
        // The reader turns last seen: while another thread holds the role, wait for a message
        // or for the role to be let go.
        let mut seen = None;
        let mut timed_out = false;
        let mut view = loop {
            let (view, ready) = self.shared.wait_view(deadline, |view| {
                !view.outbox.is_empty() || view.over || seen != Some(view.reader_turns)
            });
            if !view.outbox.is_empty() {
                break view;
            }
            if view.over {
                return Err(Error::Disconnected);
            }
            if !ready || timed_out {
                return Ok(None);
            }
            seen = Some(view.reader_turns);
            drop(view);
            // No message yet: read the connection, unless another thread does.
            timed_out = reader::listener_turn(&self.shared, deadline) == Some(Turn::TimedOut);
        };
        let Some(payload) = view.outbox.pop_front() else {
            return Ok(None);
        };
        let credits = view.credit_return.took_one();
        drop(view);
        if let Some(credits) = credits {
            self.shared.send_control_soon(Control::Credit(credits));
        }
        Ok(Some(frame::decode_owned(payload.as_slice())?))
    }

    /// Asks the child to finish: its current hook completes, then `onfinish` and `result` run.
    /// Remembered, so a restarted child stops too. Does nothing once the lifecycle is over.
    pub fn stop(&self) -> Result<(), Error> {
        self.shared.slot().stop_requested = true;
        self.shared.send_control_soon(Control::Stop);
        Ok(())
    }

    /// Kills the child at once. Final: when it returns, no child of this handle is alive and
    /// none will be started; no further hook runs, lives are ignored, and
    /// [`result`](Handle::result) returns [`Error::Killed`] (unless it already had an outcome).
    pub fn kill(&self) -> Result<(), Error> {
        self.shared.kill()
    }

    /// Whether a child process is running right now.
    pub fn is_alive(&self) -> bool {
        self.shared.is_alive()
    }

    /// The number of iterations the child has completed, as last reported (at most about a
    /// millisecond old while the child runs).
    pub fn current_run(&self) -> u64 {
        self.shared.view().progress.completed_runs
    }

    /// Uptime, busy and listening time, completed runs, lives left and restarts.
    pub fn status(&self) -> Status {
        let view = self.shared.view();
        let progress = view.progress;
        let restarts = view.restarts;
        drop(view);
        Status {
            uptime: self.shared.uptime(),
            busy: progress.usage.busy,
            listening: progress.usage.listening,
            completed_runs: progress.completed_runs,
            lives_left: progress.lives_left,
            restarts,
            alive: self.shared.is_alive(),
        }
    }

    /// The timers of every hook and of whole iterations; `None` until the lifecycle has ended.
    pub fn timers(&self) -> Option<ProcessTimers> {
        let view = self.shared.view();
        view.over.then(|| view.timers.clone())
    }

    /// Waits up to `timeout` (`None` or `Duration::MAX`: without limit) for the lifecycle to
    /// end and its last child to exit; returns whether it has. Retries and restarts happen
    /// meanwhile, on the supervisor's thread.
    ///
    /// Messages the child sends meanwhile are kept for [`listen`](Handle::listen), up to
    /// [`Config::outbox_capacity`]; a child that has more to say waits for them to be read.
    pub fn wait(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let deadline = deadline::after(timeout.into());
        self.shared.wait_view(deadline, |view| view.finished).1
    }

    /// Waits for the lifecycle to end and returns the output of the `result` hook (or of the
    /// `error` hook, when it recovered from a failure).
    ///
    /// Messages not yet read are dropped, and so is everything the child sends from now on:
    /// nobody can read them any more, so the child never waits for room.
    pub fn result(self) -> Result<P::Output, Error> {
        self.take_result(None)
    }

    /// Like [`result`](Handle::result), but gives up after `timeout`, killing the child.
    pub fn result_timeout(self, timeout: Duration) -> Result<P::Output, Error> {
        match deadline::after(Some(timeout)) {
            None => self.take_result(None),
            Some(deadline) => self.take_result(Some(deadline)).map_err(|e| match e {
                Error::ResultTimeout(_) => Error::ResultTimeout(timeout),
                other => other,
            }),
        }
    }

    fn take_result(&self, deadline: Option<Instant>) -> Result<P::Output, Error> {
        self.discard_messages();
        let (mut view, ready) = self
            .shared
            .wait_view(deadline, |view| view.ending.is_some() || view.over);
        if !ready {
            drop(view);
            self.kill()?;
            return Err(Error::ResultTimeout(Duration::ZERO));
        }
        let ending = view.ending.take();
        drop(view);
        ending_to_result::<P>(ending)
    }

    /// From now on nobody reads the outbox: empty it and let the child send without waiting.
    fn discard_messages(&self) {
        let already = self.shared.update_view(|view| {
            view.outbox.clear();
            std::mem::replace(&mut view.discarding, true)
        });
        if !already {
            self.shared.send_control_soon(Control::DiscardOutbox);
        }
    }

    /// [`result`](Handle::result) on a background thread; join it for the outcome. A system
    /// that refuses the thread is [`Error::Io`], never a panic (the handle is dropped with
    /// the closure, which kills the child, as dropping it does).
    pub fn result_in_background(
        self,
    ) -> Result<std::thread::JoinHandle<Result<P::Output, Error>>, Error> {
        std::thread::Builder::new()
            .name("skprocess-result".into())
            .spawn(move || self.result())
            .map_err(Error::Io)
    }

    /// [`result`](Handle::result) as a future that works under any executor (tokio, smol, a
    /// plain `block_on`). No thread is involved: the supervisor wakes the task. Dropping the
    /// future before it completes kills the child, as dropping the handle does.
    pub fn result_async(self) -> ResultFuture<P> {
        self.discard_messages();
        ResultFuture { handle: self }
    }
}

fn ending_to_result<P: ProcessTypes>(ending: Option<Ending>) -> Result<P::Output, Error> {
    match ending {
        Some(Ending::Output(bytes)) => Ok(frame::decode_owned(&bytes)?),
        Some(Ending::Outcome(Outcome::Failed(failure))) => Err(failure.into()),
        Some(Ending::Outcome(Outcome::Error(error))) => Err(error),
        Some(Ending::Outcome(Outcome::Killed)) => Err(Error::Killed),
        Some(Ending::Outcome(Outcome::Finished)) | None => Err(Error::Disconnected),
    }
}

/// The future returned by [`Handle::result_async`]; cancel-safe: dropping it kills the child.
pub struct ResultFuture<P: ProcessTypes> {
    handle: Handle<P>,
}

impl<P: ProcessTypes> Future for ResultFuture<P> {
    type Output = Result<P::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut view = self.handle.shared.view();
        if view.ending.is_none() && !view.over {
            view.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let ending = view.ending.take();
        drop(view);
        Poll::Ready(ending_to_result::<P>(ending))
    }
}

impl<P: ProcessTypes> std::fmt::Debug for ResultFuture<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultFuture")
            .field("process", &P::KEY)
            .finish_non_exhaustive()
    }
}

impl<P: ProcessTypes> Drop for Handle<P> {
    fn drop(&mut self) {
        // A lifecycle that is over needs nothing: its child exits by itself and the driver
        // reaps it. Anything else is ended now.
        if !self.shared.view().over {
            let _ = self.shared.kill();
        }
    }
}

impl<P: ProcessTypes> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("process", &P::KEY)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}
