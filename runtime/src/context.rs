//! The hook context: what a hook running in the child can do besides touching its own state.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;

use crate::config::Config;
use crate::error::Error;
use crate::process::Process;
use crate::timing::{ProcessTimers, Slot};
use crate::wire::{self, Resume, ToParent, Usage};

/// Least time between two progress reports, so tight loops do not pay a write per iteration.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(1);

/// How long `listen` spins before parking: a reply usually arrives within microseconds, and
/// waking a parked thread costs more than that.
const LISTEN_SPIN: Duration = Duration::from_micros(50);

/// Messages from the parent waiting to be read by a hook.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<Vec<u8>>>,
    queued: AtomicUsize,
    arrived: Condvar,
}

impl Inbox {
    pub(crate) fn push(&self, message: Vec<u8>) {
        let mut queue = self.lock();
        queue.push_back(message);
        self.queued.store(queue.len(), Ordering::Release);
        drop(queue);
        self.arrived.notify_one();
    }

    fn pop(&self, timeout: Duration) -> Option<Vec<u8>> {
        let started = Instant::now();
        let spin_until = started + LISTEN_SPIN.min(timeout);
        while self.queued.load(Ordering::Acquire) == 0 && Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        let queue = self.lock();
        let (mut queue, _) = self
            .arrived
            .wait_timeout_while(queue, remaining, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let message = queue.pop_front();
        self.queued.store(queue.len(), Ordering::Release);
        message
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The child's sending end; whole frames are written under a lock so threads never interleave.
pub(crate) struct Writer {
    stream: Arc<Stream>,
    lock: Mutex<()>,
    max_frame: u32,
}

impl Writer {
    pub(crate) fn new(stream: Arc<Stream>, max_frame: u32) -> Self {
        Self {
            stream,
            lock: Mutex::new(()),
            max_frame,
        }
    }

    pub(crate) fn send(&self, message: &ToParent) -> Result<(), Error> {
        let frame = wire::encode_frame(message, self.max_frame)?;
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        write_frame(&self.stream, &frame)
    }

    /// Sends unless another thread keeps the lock for longer than `patience`.
    pub(crate) fn send_within(&self, message: &ToParent, patience: Duration) -> Result<(), Error> {
        let frame = wire::encode_frame(message, self.max_frame)?;
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(_guard) = self.lock.try_lock() {
                return write_frame(&self.stream, &frame);
            }
            if Instant::now() >= deadline {
                return Err(Error::Disconnected);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn write_frame(mut stream: &Stream, frame: &[u8]) -> Result<(), Error> {
    std::io::Write::write_all(&mut stream, frame).map_err(|_| Error::Disconnected)
}

/// The child's end of the connection, shared by the engine and the reader thread.
pub(crate) struct ChildLink {
    pub(crate) writer: Arc<Writer>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) stop: Arc<AtomicBool>,
}

/// What a hook can use besides `self`: messages, stopping, and where the run stands.
///
/// A hook receives it by declaring a second parameter `ctx: &mut Ctx<Self>`.
pub struct Ctx<P: Process> {
    link: ChildLink,
    config: Config,
    current_run: u64,
    lives_left: u32,
    started: Instant,
    elapsed_before: Duration,
    timers: ProcessTimers,
    /// Samples recorded since the last checkpoint, so checkpoints carry only what is new.
    unsent_samples: Vec<(Slot, Duration)>,
    pub(crate) usage: Usage,
    last_progress: Instant,
    _process: PhantomData<fn() -> P>,
}

impl<P: Process> Ctx<P> {
    pub(crate) fn new(link: ChildLink, config: Config, resume: &Resume) -> Self {
        if resume.stop {
            link.stop.store(true, Ordering::SeqCst);
        }
        Self {
            link,
            config,
            current_run: resume.completed_runs,
            lives_left: resume.lives_left,
            started: Instant::now(),
            elapsed_before: resume.elapsed,
            timers: resume.timers.clone(),
            unsent_samples: Vec::new(),
            usage: resume.usage,
            last_progress: Instant::now(),
            _process: PhantomData,
        }
    }

    /// Sends a message to the parent, which reads it with [`Handle::listen`](crate::Handle::listen).
    pub fn tell(&mut self, message: P::Outbox) -> Result<(), Error> {
        let payload = wire::encode(&message)?;
        self.link.writer.send(&ToParent::Tell(payload))
    }

    /// Waits up to `timeout` for a message from the parent; `Ok(None)` means none arrived.
    pub fn listen(&mut self, timeout: Duration) -> Result<Option<P::Inbox>, Error> {
        let waiting_since = Instant::now();
        let message = self.link.inbox.pop(timeout);
        self.usage.listening += waiting_since.elapsed();
        match message {
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

    /// Attempts left, this one included: 1 means the next failure is final.
    pub fn lives_left(&self) -> u32 {
        self.lives_left
    }

    /// The configuration the process was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The timers of this process so far.
    pub fn timers(&self) -> &ProcessTimers {
        &self.timers
    }

    /// Whether another iteration should start: not stopped, runs left, time left.
    pub(crate) fn should_continue(&self) -> bool {
        let out_of_runs = self
            .config
            .runs
            .is_some_and(|runs| self.current_run >= runs);
        let out_of_time = self
            .config
            .join_in
            .is_some_and(|budget| self.elapsed_before + self.started.elapsed() >= budget);
        !self.stop_requested() && !out_of_runs && !out_of_time
    }

    /// Counts a completed iteration and reports progress now and then.
    pub(crate) fn finish_iteration(&mut self) -> Result<(), Error> {
        self.current_run += 1;
        if let Some(sample) = self.timers.full_run_sample() {
            self.record(Slot::FullRun, sample);
        }
        if self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.report_progress()?;
        }
        Ok(())
    }

    /// Spends one life; `false` when none was left to spend.
    pub(crate) fn spend_life(&mut self) -> bool {
        self.lives_left = self.lives_left.saturating_sub(1);
        self.lives_left > 0
    }

    pub(crate) fn report_progress(&mut self) -> Result<(), Error> {
        self.last_progress = Instant::now();
        self.link.writer.send(&ToParent::Progress {
            completed_runs: self.current_run,
            lives_left: self.lives_left,
            usage: self.usage,
        })
    }

    pub(crate) fn record(&mut self, slot: Slot, sample: Duration) {
        self.timers.record(slot, sample);
        if self.config.needs_checkpoints() {
            self.unsent_samples.push((slot, sample));
        }
    }

    pub(crate) fn take_unsent_samples(&mut self) -> Vec<(Slot, Duration)> {
        std::mem::take(&mut self.unsent_samples)
    }

    pub(crate) fn send(&self, message: &ToParent) -> Result<(), Error> {
        self.link.writer.send(message)
    }
}
