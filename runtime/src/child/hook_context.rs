//! The hook context: what a hook running in the child can do besides touching its own state.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::child::link::ChildLink;
use crate::config::Config;
use crate::error::{Error, Peer, TrySendError};
use crate::process_types::ProcessTypes;
use crate::protocol::credits::Acquired;
use crate::protocol::lifecycle::{
    Progress, Resume, ToParent, Usage, samples_beside_progress, samples_per_frame,
};
use crate::protocol::tell_prefix;
use crate::timing::{ProcessTimers, SampleBuffer, Slot, monotonic_nanos};
use crate::transport::frame;

/// Most timer samples that travel inside a checkpoint frame: 17 bytes each at most, well
/// within the room a checkpoint leaves.
const SAMPLES_WITH_CHECKPOINT: usize = 256;

/// Least time between two progress reports, in nanoseconds, so tight loops do not pay a
/// write per iteration.
const PROGRESS_INTERVAL_NANOS: u64 = 1_000_000;

/// What a hook can use besides `self`: messages, stopping, and where the run stands.
///
/// A hook receives it by declaring a second parameter `ctx: &mut Ctx<Self>`.
pub struct Ctx<P: ProcessTypes> {
    link: ChildLink,
    config: Config,
    current_run: u64,
    lives_left: u32,
    started: Instant,
    elapsed_before: Duration,
    timers: ProcessTimers,
    /// Samples recorded since they were last sent to the parent.
    unsent_samples: SampleBuffer,
    pub(crate) usage: Usage,
    /// When progress was last reported, on [`monotonic_nanos`].
    last_progress: u64,
    /// The encoding buffer of `tell`, reused.
    outgoing: Vec<u8>,
    _process: PhantomData<fn() -> P>,
}

impl<P: ProcessTypes> Ctx<P> {
    pub(crate) fn new(
        link: ChildLink,
        config: Config,
        resume: &Resume,
        timers: ProcessTimers,
    ) -> Self {
        Self {
            link,
            config,
            current_run: resume.completed_runs,
            lives_left: resume.lives_left,
            started: Instant::now(),
            elapsed_before: resume.elapsed,
            timers,
            unsent_samples: SampleBuffer::default(),
            usage: resume.usage,
            last_progress: monotonic_nanos(),
            outgoing: Vec::new(),
            _process: PhantomData,
        }
    }

    /// Sends a message to the parent, which reads it with
    /// [`Handle::listen`](crate::Handle::listen); waits while the parent has
    /// [`Config::outbox_capacity`] messages unread.
    pub fn tell(&mut self, message: P::Outbox) -> Result<(), Error> {
        self.tell_until(message, None)
            .map_err(|e| Error::from(e).with_peer(Peer::Parent))
    }

    /// Like [`tell`](Ctx::tell), but never waits: a full queue gives the message back.
    pub fn try_tell(&mut self, message: P::Outbox) -> Result<(), TrySendError<P::Outbox>> {
        self.tell_until(message, Some(Instant::now()))
            .map_err(|e| e.with_peer(Peer::Parent))
    }

    /// Like [`tell`](Ctx::tell), but waits at most `timeout` for room.
    pub fn tell_timeout(
        &mut self,
        message: P::Outbox,
        timeout: Duration,
    ) -> Result<(), TrySendError<P::Outbox>> {
        self.tell_until(message, crate::deadline::after(Some(timeout)))
            .map_err(|e| e.with_peer(Peer::Parent))
    }

    /// Sends `message` without spending a credit, as a broken or hostile child would: the
    /// parent must treat it as a protocol violation once the credits it gave are exceeded.
    /// For the runtime's own tests only.
    #[doc(hidden)]
    pub fn __tell_without_credit(&mut self, message: P::Outbox) -> Result<(), Error> {
        self.tell_with(message, None, false).map_err(Error::from)
    }

    fn tell_until(
        &mut self,
        message: P::Outbox,
        deadline: Option<Instant>,
    ) -> Result<(), TrySendError<P::Outbox>> {
        self.tell_with(message, deadline, true)
    }

    fn tell_with(
        &mut self,
        message: P::Outbox,
        deadline: Option<Instant>,
        spend_credit: bool,
    ) -> Result<(), TrySendError<P::Outbox>> {
        let Some(connection) = self.link.connection.clone() else {
            return Err(TrySendError::Failed(Error::Usage(
                crate::error::Usage::NoParentLink,
            )));
        };
        let failed = |e: frame::WireError| TrySendError::Failed(e.into());
        frame::encode_into(&message, &mut self.outgoing)
            .map_err(|e| TrySendError::Failed(crate::round_trip::encode_failed::<P::Outbox>(e)))?;
        crate::round_trip::check_encoded::<P::Outbox>(&self.outgoing)
            .map_err(TrySendError::Failed)?;
        let (prefix, used) = tell_prefix(self.outgoing.len());
        frame::check_len(used + self.outgoing.len(), self.config.max_frame_bytes)
            .map_err(failed)?;
        match spend_credit.then(|| self.link.outbox_credits.acquire(deadline)) {
            None | Some(Acquired::Granted) => {}
            Some(Acquired::Full) => return Err(TrySendError::Full(message)),
            Some(Acquired::Closed) => {
                return Err(TrySendError::Failed(Error::Gone { peer: Peer::Parent }));
            }
        }
        connection
            .send_with_payload(&prefix[..used], &self.outgoing)
            .map_err(|error| TrySendError::Failed(error.into()))
    }

    /// Waits for the next message from the parent, without limit.
    pub fn listen(&mut self) -> Result<P::Inbox, Error> {
        loop {
            if let Some(message) = self.listen_timeout(Duration::MAX)? {
                return Ok(message);
            }
        }
    }

    /// Waits up to `timeout` (`Duration::MAX`: without limit) for a message from the parent;
    /// `Ok(None)` means none arrived.
    pub fn listen_timeout(&mut self, timeout: Duration) -> Result<Option<P::Inbox>, Error> {
        if self.link.connection.is_none() {
            return Err(Error::Usage(crate::error::Usage::NoParentLink));
        }
        let waiting_since = Instant::now();
        let message = self.link.next_message(waiting_since.checked_add(timeout));
        self.usage.listening = self.usage.listening.saturating_add(waiting_since.elapsed());
        let Some(bytes) = message else {
            return Ok(None);
        };
        self.link.took_message();
        Ok(Some(frame::decode_owned(&bytes)?))
    }

    /// Asks the process to finish: the current hook completes, then `onfinish` and `result` run.
    /// (A hook cannot wait for its own lifecycle, so there is no `stop` here.)
    pub fn request_stop(&mut self) {
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
        // The clock is read only when there is a budget to check it against.
        let out_of_time = self.config.join_in.is_some_and(|budget| {
            self.elapsed_before.saturating_add(self.started.elapsed()) >= budget
        });
        !self.stop_requested() && !out_of_runs && !out_of_time
    }

    /// Counts a completed iteration that took `full_run` in its prerun, run and postrun
    /// (recorded when positive), and reports progress now and then. `now` is a reading of
    /// [`monotonic_nanos`] taken as postrun returned.
    pub(crate) fn finish_iteration(&mut self, full_run: Duration, now: u64) -> Result<(), Error> {
        self.current_run += 1;
        if !full_run.is_zero() {
            self.record(Slot::FullRun, full_run);
        }
        if now.saturating_sub(self.last_progress) >= PROGRESS_INTERVAL_NANOS {
            self.report_progress()?;
        }
        Ok(())
    }

    /// Spends one life; `false` when none was left to spend.
    pub(crate) fn spend_life(&mut self) -> bool {
        self.lives_left = self.lives_left.saturating_sub(1);
        self.lives_left > 0
    }

    /// Sends where the run stands and the timer samples not sent yet: with the report when
    /// they fit beside it, else before it.
    pub(crate) fn report_progress(&mut self) -> Result<(), Error> {
        self.last_progress = monotonic_nanos();
        if self.unsent_samples.len() > samples_beside_progress(self.config.max_frame_bytes) {
            self.send_samples()?;
        }
        let sent = self.link.send(&ToParent::Progress {
            progress: Progress {
                completed_runs: self.current_run,
                lives_left: self.lives_left,
                usage: self.usage,
            },
            samples: self.unsent_samples.all(),
        });
        self.unsent_samples.clear();
        sent
    }

    /// Sends the unsent timer samples in frames that fit the limit.
    pub(crate) fn send_samples(&mut self) -> Result<(), Error> {
        let per_frame = samples_per_frame(self.config.max_frame_bytes);
        for chunk in self.unsent_samples.frames(per_frame) {
            self.link.send(&ToParent::Samples(chunk))?;
        }
        self.unsent_samples.clear();
        Ok(())
    }

    /// Sends a checkpoint of `state` after `completed_runs`, with the unsent timer samples
    /// when they fit beside the state (a checkpoint leaves
    /// [`START_OVERHEAD`](crate::protocol::START_OVERHEAD) bytes free); more are sent on
    /// their own first.
    pub(crate) fn send_checkpoint(&mut self, state: &[u8]) -> Result<(), Error> {
        if self.unsent_samples.len() > SAMPLES_WITH_CHECKPOINT {
            self.send_samples()?;
        }
        let sent = self.link.send(&ToParent::Checkpoint {
            state,
            completed_runs: self.current_run,
            samples: self.unsent_samples.all(),
        });
        self.unsent_samples.clear();
        sent
    }

    pub(crate) fn record(&mut self, slot: Slot, sample: Duration) {
        self.timers.record(slot, sample);
        self.unsent_samples.push(slot, sample);
    }

    pub(crate) fn send_control(&self, message: &ToParent<'_>) -> Result<(), Error> {
        self.link.send(message)
    }

    pub(crate) fn link(&self) -> &ChildLink {
        &self.link
    }
}
