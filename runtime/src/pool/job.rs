//! One map call, the caller's side: pulls the input lazily as results come back (a bounded
//! number of items in flight), encodes items on the caller's thread, and turns results into
//! values or per-item errors — in input or completion order. Also the handles of the
//! `background()` and `asynced()` forms.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;
use crate::pool::PoolCore;
use crate::pool::dispatcher::{Command, JobEvent};
use crate::pool::items::ItemBatch;
use crate::pool::progress::ProgressBar;
use crate::pool::scheduler::{ItemError, JobId, Task};
use crate::protocol::pool::ItemFailure;
use crate::transport::frame::{self, WireError};

/// How often a job waiting for results checks that the dispatcher still runs.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// How long the caller pulls and encodes input before it hands what it has to the dispatcher.
const FEED_TIME: Duration = Duration::from_micros(50);

/// Whether a batch of `len` items begun at `since` goes to the dispatcher now. The clock is
/// read at 1, 2, 4, … 256 items and every 256 after, so a slow input is handed over item by
/// item while a cheap one pays for a clock read only every 256 items.
fn batch_is_due(len: usize, since: Instant) -> bool {
    let check = len.is_power_of_two() && len <= 256 || len % 256 == 0;
    len > 0 && check && since.elapsed() >= FEED_TIME
}

/// An outcome waiting to be handed out, its error boxed: an [`Error`] is large, and a job
/// keeps up to its window of these, moved one by one, so inline it cost more than the value.
type Kept<R> = Result<R, Box<Error>>;

/// How a job decodes one output.
pub(crate) type Decode<R> = fn(&[u8]) -> Result<R, WireError>;

/// What a job runs and how.
#[derive(Clone, Copy)]
pub(crate) struct JobSpec<R> {
    pub(crate) task: Task,
    pub(crate) lives: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) decode: Decode<R>,
    /// The items' debug-build check that they read back as written
    /// (`round_trip::check_encoded`).
    pub(crate) check: fn(&[u8]) -> Result<(), Error>,
    pub(crate) ordered: bool,
    /// Whether to draw a progress bar (see [`ProgressBar`]).
    pub(crate) progress: bool,
}

/// A running map: its input, what is in flight, and what came back.
pub(crate) struct JobRun<I: Iterator, R> {
    core: Arc<PoolCore>,
    spec: JobSpec<R>,
    id: JobId,
    input: Option<I>,
    events: Receiver<JobEvent>,
    events_in: Sender<JobEvent>,
    /// Items pulled from the input so far.
    pulled: u64,
    /// Items whose outcome came back.
    returned: u64,
    /// The next index to hand out, in input order.
    next_in_order: u64,
    /// Outcomes that came back and were not handed out yet (a job in completion order).
    ready: VecDeque<(u64, Kept<R>)>,
    /// Outcomes that came back and were not handed out yet (a job in input order), each in
    /// its place; slot 0 is `next_in_order`.
    reorder: VecDeque<Option<Kept<R>>>,
    /// Encoded input bytes so far, to size the window to the items.
    input_bytes: u64,
    /// Items and bytes of the last batch sent: the next one starts with that much room, so
    /// a batch does not grow item by item, copying itself as it goes.
    last_batch: (usize, usize),
    cancelled: bool,
    progress: ProgressBar,
}

impl<I, R> JobRun<I, R>
where
    I: Iterator,
    I::Item: Serialize,
{
    /// A job over `input`, registered with the dispatcher (no worker is touched until an item
    /// is pulled); `None` when the pool is closed.
    pub(crate) fn new(core: Arc<PoolCore>, spec: JobSpec<R>, input: I) -> Option<Self> {
        let (events_in, events) = mpsc::channel();
        let id = core.next_job.fetch_add(1, Ordering::Relaxed);
        let admitted = core.admit(Command::Submit {
            job: id,
            task: spec.task,
            timeout: spec.timeout,
            lives: spec.lives,
            results: events_in.clone(),
        });
        if !admitted {
            return None;
        }
        let len = match input.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        };
        let progress = ProgressBar::new(spec.progress, len);
        Some(Self {
            core,
            spec,
            id,
            input: Some(input),
            events,
            events_in,
            pulled: 0,
            returned: 0,
            next_in_order: 0,
            ready: VecDeque::new(),
            reorder: VecDeque::new(),
            input_bytes: 0,
            last_batch: (0, 0),
            cancelled: false,
            progress,
        })
    }

    /// A sender that cancels this job when it sends [`JobEvent::Cancelled`].
    pub(crate) fn canceller(&self) -> Sender<JobEvent> {
        self.events_in.clone()
    }

    /// The next outcome: in input order when the job is ordered, as they come otherwise.
    pub(crate) fn next_outcome(&mut self) -> Option<Result<R, Error>> {
        loop {
            if let Some(outcome) = self.take_ready() {
                return Some(outcome);
            }
            self.feed();
            // Items that failed before they were sent (encoding) are ready at once.
            if self.has_ready() {
                continue;
            }
            if self.cancelled || (self.input.is_none() && self.returned == self.pulled) {
                return None;
            }
            self.receive();
        }
    }

    /// Whether [`take_ready`](Self::take_ready) has an outcome to give.
    fn has_ready(&self) -> bool {
        if self.spec.ordered {
            matches!(self.reorder.front(), Some(Some(_)))
        } else {
            !self.ready.is_empty()
        }
    }

    fn take_ready(&mut self) -> Option<Result<R, Error>> {
        if !self.spec.ordered {
            return self
                .ready
                .pop_front()
                .map(|(_, outcome)| outcome.map_err(|e| *e));
        }
        let outcome = self.reorder.front_mut()?.take()?;
        self.reorder.pop_front();
        self.next_in_order += 1;
        Some(outcome.map_err(|e| *e))
    }

    /// Files an outcome that came back: in its place in input order when the job is ordered
    /// (results mostly come in order, so that place is mostly the end), as it comes otherwise.
    fn file(&mut self, index: u64, outcome: Result<R, Error>) {
        let outcome = outcome.map_err(Box::new);
        if !self.spec.ordered {
            self.ready.push_back((index, outcome));
            return;
        }
        // Within the window, so the offset is small; an index outside it (already handed
        // out, or never pulled) is not this job's to file.
        let window = self.pulled.saturating_sub(self.next_in_order);
        let Some(offset) = index
            .checked_sub(self.next_in_order)
            .filter(|offset| *offset < window)
        else {
            return;
        };
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if offset == self.reorder.len() {
            self.reorder.push_back(Some(outcome));
            return;
        }
        if offset > self.reorder.len() {
            self.reorder.resize_with(offset + 1, || None);
        }
        self.reorder[offset] = Some(outcome);
    }

    /// Items pulled and not handed out: what the window bounds.
    fn in_flight(&self) -> u64 {
        let handed_out = if self.spec.ordered {
            self.next_in_order
        } else {
            self.returned - self.ready.len() as u64
        };
        self.pulled - handed_out
    }

    /// The window: at most `max_in_flight` items, fewer when items are large (about 64 MiB
    /// of input in flight), never fewer than two per worker.
    fn window(&self) -> u64 {
        let max = self.core.max_in_flight as u64;
        let average = self
            .input_bytes
            .checked_div(self.pulled)
            .unwrap_or(0)
            .max(1);
        let by_bytes = (64 << 20) / average;
        let floor = 2 * self.core.workers as u64;
        max.min(by_bytes.max(floor)).max(1)
    }

    /// Pulls input while the window has room and sends it to the dispatcher in batches that
    /// each took about [`FEED_TIME`] to pull and encode, so workers start while the rest is
    /// being encoded when the input is slow, and a cheap input goes over in one hand-over
    /// (each one wakes the dispatcher and cuts chunks from a smaller queue). A batch's items
    /// are encoded one after another into one buffer.
    fn feed(&mut self) {
        let mut batch = ItemBatch::default();
        let mut window = self.window();
        let mut since = Instant::now();
        while self.input.is_some() && !self.cancelled && self.in_flight() < window {
            if batch_is_due(batch.len(), since) {
                self.send_batch(std::mem::take(&mut batch));
                window = self.window();
                since = Instant::now();
                continue;
            }
            let Some(value) = self.input.as_mut().and_then(Iterator::next) else {
                self.input = None;
                break;
            };
            let index = self.pulled;
            self.pulled += 1;
            if let Err(error) = self.encode(&value, index, &mut batch) {
                self.returned += 1;
                self.progress.advance();
                self.file(index, Err(item_error(index, error)));
            }
        }
        self.send_batch(batch);
    }

    fn send_batch(&mut self, batch: ItemBatch) {
        if batch.is_empty() {
            return;
        }
        self.last_batch = (batch.len(), batch.bytes());
        self.core.command(Command::Items {
            job: self.id,
            items: batch.finish(),
        });
    }

    /// Appends the encoded `value` to the batch, unless it is too large for a frame (or does
    /// not encode, or read back): then the batch is left as it was.
    fn encode(&mut self, value: &I::Item, index: u64, batch: &mut ItemBatch) -> Result<(), Error> {
        if batch.is_empty() {
            // The first item: room for as many as the last batch took.
            let (items, bytes) = self.last_batch;
            *batch = ItemBatch::with_capacity(items, bytes);
        }
        // Encoded in place, at the end of the batch, rather than copied there.
        let bytes = batch
            .push(index, |buffer| frame::append_into(value, buffer))
            .map_err(crate::round_trip::encode_failed::<I::Item>)?;
        let size = bytes.len();
        self.input_bytes += size as u64;
        let checked = (self.spec.check)(bytes).and_then(|()| {
            if size > self.core.item_limit {
                return Err(Error::TooLarge {
                    size: size as u64,
                    limit: self.core.item_limit as u64,
                });
            }
            Ok(())
        });
        if let Err(error) = checked {
            batch.pop();
            return Err(error);
        }
        Ok(())
    }

    /// Waits for the next batch of outcomes.
    fn receive(&mut self) {
        let event = loop {
            match self.events.recv_timeout(LIVENESS_CHECK) {
                Err(RecvTimeoutError::Timeout) if self.core.dispatcher_running() => {}
                event => break event,
            }
        };
        match event {
            Ok(JobEvent::Results(results)) => {
                for (index, outcome) in results {
                    let outcome = match outcome {
                        Ok(bytes) => (self.spec.decode)(&bytes).map_err(Error::from),
                        Err(error) => Err(Error::from(error)),
                    };
                    self.take(index, outcome);
                }
            }
            Ok(JobEvent::Frame(frame)) => frame.each(|index, outcome| {
                let outcome = match outcome {
                    Ok(bytes) => (self.spec.decode)(bytes).map_err(Error::from),
                    Err(failure) => Err(Error::from(failure)),
                };
                self.take(index, outcome);
            }),
            // Cancelled by a dropped future, or the dispatcher ended (a bug: it outlives jobs).
            Ok(JobEvent::Cancelled) | Err(_) => self.cancelled = true,
        }
    }

    /// Takes one outcome that came back.
    fn take(&mut self, index: u64, outcome: Result<R, Error>) {
        self.returned += 1;
        self.progress.advance();
        self.file(index, outcome.map_err(|e| item_error(index, e)));
    }

    /// Room for the outputs the input says it has at least (its size hint's lower bound, as
    /// `collect` trusts it, up to a million), so a map does not copy its outputs as they grow.
    fn expected_len(&self) -> usize {
        let low = self.input.as_ref().map_or(0, |input| input.size_hint().0);
        low.min(1 << 20)
    }

    /// Every outcome, in order; the first error in that order once all are in.
    pub(crate) fn collect(mut self) -> Result<Vec<R>, Error> {
        let mut values = Vec::with_capacity(self.expected_len());
        let mut first_error = None;
        while let Some(outcome) = self.next_outcome() {
            match outcome {
                Ok(value) if first_error.is_none() => values.push(value),
                Ok(_) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None if self.cancelled => Err(Error::Gone {
                peer: crate::error::Peer::Pool,
            }),
            None => Ok(values),
        }
    }

    /// Outcomes as they come; stops at the first error.
    pub(crate) fn collect_unordered(mut self) -> Result<Vec<R>, Error> {
        let mut values = Vec::with_capacity(self.expected_len());
        while let Some(outcome) = self.next_outcome() {
            values.push(outcome?);
        }
        Ok(values)
    }
}

impl<I: Iterator, R> Drop for JobRun<I, R> {
    fn drop(&mut self) {
        self.core.command(Command::End { job: self.id });
    }
}

fn item_error(index: u64, error: Error) -> Error {
    Error::Item {
        index,
        error: Box::new(error),
    }
}

impl From<ItemFailure> for Error {
    fn from(failure: ItemFailure) -> Self {
        match failure {
            ItemFailure::Panicked(panic) => Error::from(*panic),
            ItemFailure::Process(failure) => Error::from(*failure),
            ItemFailure::Decode(message) | ItemFailure::Encode(message) => {
                Error::Malformed { message }
            }
            ItemFailure::TooLarge { size, limit } => Error::TooLarge { size, limit },
            ItemFailure::UnknownTask(detail) => Error::UnknownType { key: detail },
        }
    }
}

impl From<ItemError> for Error {
    fn from(error: ItemError) -> Self {
        match error {
            ItemError::Failed(failure) => Error::from(failure),
            ItemError::Crashed(status) => Error::Crashed { status, run: 0 },
            ItemError::TimedOut(limit) => Error::Timeout {
                limit,
                of: crate::error::Timed::Item,
            },
            ItemError::NoWorker(reason) => Error::NoWorker { reason },
            ItemError::Terminated => Error::Gone {
                peer: crate::error::Peer::Pool,
            },
            ItemError::Cluster(problem) => Error::Cluster { problem },
        }
    }
}

/// The lazy iterator of [`Maps::imap`](crate::Maps::imap) and
/// [`Maps::unordered_imap`](crate::Maps::unordered_imap): one `Result` per item.
///
/// It pulls the input as workers free up, with a bounded number of items in flight. Dropping
/// it cancels the items not started yet.
pub struct Imap<'p, I: Iterator, R> {
    run: Option<JobRun<I, R>>,
    closed: bool,
    _pool: std::marker::PhantomData<&'p ()>,
}

impl<I: Iterator, R> Imap<'_, I, R>
where
    I::Item: Serialize,
{
    pub(crate) fn new(run: Option<JobRun<I, R>>) -> Self {
        Self {
            closed: run.is_none(),
            run,
            _pool: std::marker::PhantomData,
        }
    }
}

impl<I: Iterator, R> Iterator for Imap<'_, I, R>
where
    I::Item: Serialize,
{
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if std::mem::take(&mut self.closed) {
            return Some(Err(Error::Gone {
                peer: crate::error::Peer::Pool,
            }));
        }
        self.run.as_mut()?.next_outcome()
    }
}

/// Where a background or async map leaves its outcome: the runtime's one one-shot.
pub(crate) use crate::completion::Completion;
use crate::completion::Take;

impl<T> Completion<T> {
    /// Fails the map before it ran.
    pub(crate) fn fail<R>(&self, error: Error)
    where
        T: From<Result<Vec<R>, Error>>,
    {
        self.complete(T::from(Err(error)));
    }
}

/// A map running on a thread of its own ([`Maps::background`](crate::Maps::background)).
pub struct Job<T> {
    completion: Arc<Completion<T>>,
}

impl<T> Job<T> {
    pub(crate) fn new(completion: Arc<Completion<T>>) -> Self {
        Self { completion }
    }

    /// Waits for the map to end and returns its outcome.
    pub fn join(self) -> T {
        // The job is the only taker, so the outcome is never gone when the wait ends.
        loop {
            if let Take::Value(value) = self.completion.take_until(None) {
                return value;
            }
        }
    }

    /// Waits at most `timeout` (`Duration::MAX`: no limit) for the outcome; gives the job back
    /// when it is not finished.
    pub fn join_timeout(self, timeout: Duration) -> Result<T, Self> {
        let deadline = crate::deadline::after(Some(timeout));
        match self.completion.take_until(deadline) {
            Take::Value(value) => Ok(value),
            Take::Pending | Take::Taken => Err(self),
        }
    }

    /// Whether the outcome is there.
    pub fn is_finished(&self) -> bool {
        self.completion.is_done()
    }
}

impl<T> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Cancels a deferred map's job (none when the pool was closed). Not public API.
#[doc(hidden)]
pub struct Canceller(pub(crate) Option<Sender<JobEvent>>);

/// A map as a future ([`Maps::asynced`](crate::Maps::asynced)), for any executor: the map runs
/// on a thread of its own and wakes the task when done. Dropping the future cancels the map:
/// items not started yet never run, and the results of running ones are dropped.
pub struct MapFuture<T> {
    completion: Arc<Completion<T>>,
    cancel: Canceller,
}

impl<T> MapFuture<T> {
    pub(crate) fn new(completion: Arc<Completion<T>>, cancel: Canceller) -> Self {
        Self { completion, cancel }
    }
}

impl<T> Future for MapFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.completion.poll_take(cx.waker()) {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

impl<T> Drop for MapFuture<T> {
    fn drop(&mut self) {
        if let (false, Some(cancel)) = (self.completion.is_done(), &self.cancel.0) {
            let _ = cancel.send(JobEvent::Cancelled);
        }
    }
}

impl<T> std::fmt::Debug for MapFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapFuture").finish_non_exhaustive()
    }
}
