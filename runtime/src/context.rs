//! The hook context: what a hook running in the child can do besides touching its own state.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;

use crate::config::Config;
use crate::error::Error;
use crate::process::Process;
use crate::wire::{self, ToParent};

/// Least time between two progress reports, so tight loops do not pay a write per iteration.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(1);

/// Messages from the parent waiting to be read by a hook.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
}

impl Inbox {
    pub(crate) fn push(&self, message: Vec<u8>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(message);
        self.arrived.notify_one();
    }

    fn pop(&self, timeout: Duration) -> Option<Vec<u8>> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut queue, _) = self
            .arrived
            .wait_timeout_while(queue, timeout, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        queue.pop_front()
    }
}

/// The child's end of the connection, shared by the engine and the reader thread.
pub(crate) struct ChildLink {
    pub(crate) stream: Arc<Stream>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) max_frame: u32,
}

impl ChildLink {
    pub(crate) fn send(&self, message: &ToParent) -> Result<(), Error> {
        wire::write_message(&*self.stream, message, self.max_frame).map_err(|e| match e {
            wire::WireError::Io(_) => Error::Disconnected,
            other => other.into(),
        })
    }
}

/// What a hook can use besides `self`: messages, stopping, and where the run stands.
///
/// A hook receives it by declaring a second parameter `ctx: &mut Ctx<Self>`.
pub struct Ctx<P: Process> {
    link: ChildLink,
    config: Config,
    current_run: u64,
    last_progress: Instant,
    _process: PhantomData<fn() -> P>,
}

impl<P: Process> Ctx<P> {
    pub(crate) fn new(link: ChildLink, config: Config) -> Self {
        Self {
            link,
            config,
            current_run: 0,
            last_progress: Instant::now(),
            _process: PhantomData,
        }
    }

    /// Sends a message to the parent, which reads it with [`Handle::listen`](crate::Handle::listen).
    pub fn tell(&mut self, message: P::Outbox) -> Result<(), Error> {
        let payload = wire::encode(&message)?;
        self.link.send(&ToParent::Tell(payload))
    }

    /// Waits up to `timeout` for a message from the parent; `Ok(None)` means none arrived.
    pub fn listen(&mut self, timeout: Duration) -> Result<Option<P::Inbox>, Error> {
        match self.link.inbox.pop(timeout) {
            Some(bytes) => Ok(Some(wire::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Asks the process to finish: the current hook completes, then `onfinish` and `result` run.
    pub fn stop(&mut self) {
        self.link.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested, by the parent or by a hook.
    pub fn stop_requested(&self) -> bool {
        self.link.stop.load(Ordering::SeqCst)
    }

    /// The index of the current iteration, which is also the number of completed iterations.
    pub fn current_run(&self) -> u64 {
        self.current_run
    }

    /// The configuration the process was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn link(&self) -> &ChildLink {
        &self.link
    }

    pub(crate) fn finish_iteration(&mut self) -> Result<(), Error> {
        self.current_run += 1;
        if self.last_progress.elapsed() < PROGRESS_INTERVAL {
            return Ok(());
        }
        self.last_progress = Instant::now();
        self.link.send(&ToParent::Progress {
            completed_runs: self.current_run,
        })
    }

    pub(crate) fn runs_done(&self) -> bool {
        self.config.runs.is_some_and(|runs| self.current_run >= runs)
    }
}
