//! The parent's handle on a running process.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::child;
use crate::config::Config;
use crate::error::Error;
use crate::process::Process;
use crate::supervise::{Inner, Launch, Terminal, past};
use crate::timing::ProcessTimers;
use crate::wire::{self, ToChild};

/// Most frames `current_run` reads to catch up with the child.
const CATCH_UP_FRAMES: usize = 16;

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

/// A process running in a child. Dropping the handle kills a child that is still running.
pub struct Handle<P: Process> {
    inner: Arc<Inner>,
    _process: PhantomData<fn() -> P>,
}

impl<P: Process> Handle<P> {
    /// Spawns a child, authenticates it and hands it the process. See [`Process::start_with`].
    pub(crate) fn spawn(process: P, config: Config) -> Result<Self, Error> {
        child::forbid_unhooked_child();
        validate(&config)?;
        let inner = Inner::launch(Launch {
            key: P::KEY,
            has_error_hook: P::HAS_ERROR_HOOK,
            state: wire::encode(&process)?,
            config,
        })?;
        Ok(Self {
            inner,
            _process: PhantomData,
        })
    }

    /// The OS process id of the current child (it changes when the child is restarted).
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Sends a message the child reads with [`Ctx::listen`](crate::Ctx::listen).
    pub fn tell(&self, message: P::Inbox) -> Result<(), Error> {
        let payload = wire::encode(&message)?;
        self.inner.send(&ToChild::Tell(payload))
    }

    /// Waits up to `timeout` (`None`: until one arrives) for a message from the child.
    ///
    /// `Ok(None)` means the time ran out; [`Error::Disconnected`] means the lifecycle is over
    /// and every message the child sent has been read.
    pub fn listen(&self, timeout: impl Into<Option<Duration>>) -> Result<Option<P::Outbox>, Error> {
        let deadline = timeout.into().map(|t| Instant::now() + t);
        let mut inbound = self.inner.lock_inbound();
        // Even with no time to wait, look once at what has already arrived.
        let mut fresh = true;
        loop {
            if let Some(bytes) = inbound.outbox.pop_front() {
                return Ok(Some(wire::decode(&bytes)?));
            }
            if inbound.closed {
                return Err(Error::Disconnected);
            }
            if past(deadline) && !fresh {
                return Ok(None);
            }
            inbound = self.inner.pump(inbound, deadline);
            fresh = false;
        }
    }

    /// Asks the child to finish: its current hook completes, then `onfinish` and `result` run.
    /// Does nothing if the child has already exited.
    pub fn stop(&self) -> Result<(), Error> {
        self.inner.stop()
    }

    /// Kills the child at once; no further hook runs, lives are ignored, and
    /// [`result`](Handle::result) returns [`Error::Killed`].
    pub fn kill(&self) -> Result<(), Error> {
        self.inner.kill()
    }

    /// Whether the child process is running right now.
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// The number of iterations the child has completed, as last reported.
    pub fn current_run(&self) -> u64 {
        if let Some(mut inbound) = self.inner.try_lock_inbound() {
            for _ in 0..CATCH_UP_FRAMES {
                inbound = self.inner.pump(inbound, Some(Instant::now()));
            }
        }
        self.inner.progress().completed_runs
    }

    /// Uptime, busy and listening time, completed runs, lives left and restarts.
    pub fn status(&self) -> Status {
        let progress = self.inner.progress();
        Status {
            uptime: self.inner.started.elapsed(),
            busy: progress.usage.busy,
            listening: progress.usage.listening,
            completed_runs: progress.completed_runs,
            lives_left: progress.lives_left,
            restarts: progress.restarts,
            alive: self.inner.is_alive(),
        }
    }

    /// The timers of every hook and of whole iterations; `None` until the lifecycle has ended
    /// (after [`wait`](Handle::wait) returned `true`).
    pub fn timers(&self) -> Option<ProcessTimers> {
        self.inner.lock_inbound().timers.clone()
    }

    /// Waits up to `timeout` (`None`: without limit) for the lifecycle to end and the child to
    /// exit; returns whether it has. Retries and restarts happen inside the wait.
    ///
    /// Messages the child sends meanwhile are kept for [`listen`](Handle::listen).
    pub fn wait(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let deadline = timeout.into().map(|t| Instant::now() + t);
        self.inner.read_until(deadline, |inbound| inbound.closed) && !self.inner.is_alive()
    }

    /// Waits for the lifecycle to end and returns the output of the `result` hook (or of the
    /// `error` hook, when it recovered from a failure).
    ///
    /// Unread messages are dropped with the handle; read them with [`listen`](Handle::listen) first.
    pub fn result(self) -> Result<P::Output, Error> {
        self.inner
            .read_until(None, |inbound| inbound.terminal.is_some());
        let terminal = self.inner.lock_inbound().terminal.take();
        match terminal {
            Some(Terminal::Finished(bytes)) => Ok(wire::decode(&bytes)?),
            Some(Terminal::Failed(failure)) => Err(failure.into()),
            Some(Terminal::Setup(error)) => Err(error),
            None if self.inner.was_killed() => Err(Error::Killed),
            None => Err(Error::Disconnected),
        }
    }

    /// [`result`](Handle::result) on a background thread; join it for the outcome.
    pub fn result_in_background(self) -> std::thread::JoinHandle<Result<P::Output, Error>> {
        std::thread::spawn(move || self.result())
    }

    /// [`result`](Handle::result) as a future that works under any executor (tokio,
    /// async-std, smol or a plain `block_on`): the wait happens on a background thread, which
    /// wakes the task when the outcome is there.
    pub fn result_async(self) -> ResultFuture<P::Output> {
        let shared = Arc::new(Mutex::new(FutureState {
            outcome: None,
            waker: None,
        }));
        let filler = Arc::clone(&shared);
        std::thread::spawn(move || {
            let outcome = self.result();
            let mut state = filler.lock().unwrap_or_else(PoisonError::into_inner);
            state.outcome = Some(outcome);
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        });
        ResultFuture { shared }
    }

    /// Like [`result`](Handle::result), but gives up after `timeout`, killing the child.
    pub fn result_timeout(self, timeout: Duration) -> Result<P::Output, Error> {
        let deadline = Some(Instant::now() + timeout);
        if self
            .inner
            .read_until(deadline, |inbound| inbound.terminal.is_some())
        {
            return self.result();
        }
        self.kill()?;
        Err(Error::ResultTimeout(timeout))
    }
}

struct FutureState<T> {
    outcome: Option<Result<T, Error>>,
    waker: Option<Waker>,
}

/// The future returned by [`Handle::result_async`].
pub struct ResultFuture<T> {
    shared: Arc<Mutex<FutureState<T>>>,
}

impl<T> Future for ResultFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        match state.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for ResultFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultFuture").finish_non_exhaustive()
    }
}

impl<P: Process> Drop for Handle<P> {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl<P: Process> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("process", &P::KEY)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

fn validate(config: &Config) -> Result<(), Error> {
    if config.max_frame_bytes < 1024 {
        return Err(Error::Config(format!(
            "`max_frame_bytes` must be at least 1024, got {}",
            config.max_frame_bytes
        )));
    }
    if config.lives == 0 {
        return Err(Error::Config("`lives` must be at least 1, got 0".into()));
    }
    Ok(())
}
