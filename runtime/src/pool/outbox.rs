//! Where a worker's item reports go ([`ItemSink`]: the parent connection, or a thread pool's
//! dispatcher), and a worker process's sink ([`Outbox`]): results batched in time and sent by
//! the main thread at the end of a chunk and by the flusher thread every [`TICK`], which also
//! says which item runs once it has run for a whole tick; and the [`InHand`] page, where the
//! main thread keeps the ordinal of the item it runs for the parent to read should the worker
//! die.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Error;
use crate::pool::in_hand::InHand;
use crate::protocol::pool::{
    self, ItemFailure, Measured, RESULT_ENTRY_ROOM, RESULT_OVERHEAD, RESULTS_HEAD_AND_TAIL,
    Reporting, ResultsReader, ToPool, WireOutcome, WireResult,
};
use crate::timing::monotonic_nanos;
use crate::transport::Connection;
use crate::transport::frame;

/// How often finished results are sent, and how long an item runs before the worker says so.
pub(crate) const TICK: Duration = Duration::from_micros(500);
/// Results are sent at once when they hold this many bytes.
const FLUSH_BYTES: usize = 256 * 1024;

/// Where a worker's item reports go: the parent connection, or a thread pool's dispatcher.
pub(crate) trait ItemSink: Send + Sync {
    /// Item `index` of `job` starts, watched as `reporting` says (reported before it runs when
    /// each is).
    fn started(&self, job: u64, index: u64, reporting: Reporting);
    /// Item `index` finished with this outcome.
    fn finished(
        &self,
        job: u64,
        index: u64,
        outcome: Result<&[u8], ItemFailure>,
        reporting: Reporting,
    );
    /// Item `index` finished and then, when `next` is some, item `next` of the same job
    /// starts: one report, for a sink that can take both at once.
    fn finished_then_started(
        &self,
        job: u64,
        index: u64,
        outcome: Result<&[u8], ItemFailure>,
        reporting: Reporting,
        next: Option<u64>,
    ) {
        self.finished(job, index, outcome, reporting);
        if let Some(next) = next {
            self.started(job, next, reporting);
        }
    }
    /// The item of this ordinal starts now: kept where the parent reads it should this worker
    /// die; `false` where there is no such place (the parent learns only from reports).
    fn hold(&self, ordinal: u64) -> bool;
    /// Item `index` of `job` runs: say so now rather than a tick later, with the lives it
    /// counts as spent when they changed (a crash after this must not retry it with more).
    fn running_now(&self, job: u64, index: u64, spent: Option<u32>);
    /// The chunk is done: send what is held, with how long its items took.
    fn chunk_done(&self, measured: Measured);
    /// Whether an overrun of a process item's hook ends this process (it must, in a worker
    /// process) rather than only abandoning the hook's thread.
    fn overrun_ends_process(&self) -> bool;
}

/// The item running now, as the flusher sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Current {
    job: u64,
    index: u64,
    /// Counts items, so the flusher can tell one long item from two short ones.
    serial: u64,
}

/// Results waiting to be sent, and what runs.
#[derive(Default)]
struct Held {
    job: u64,
    /// The finished results, written as a results frame carries them
    /// ([`put_result`](pool::put_result)): sending adds only a head and a tail.
    results: Vec<u8>,
    /// How many results `results` holds.
    count: u64,
    current: Option<Current>,
    serial: u64,
    /// Whether the current item's start was reported, or needs no report (its chunk is not
    /// watched for it).
    reported: bool,
    busy: bool,
    /// The flusher waits until an item needs watching or results are held: a tick would
    /// have nothing to do.
    parked: bool,
}

/// A worker process's sink: results batched in time, sent by the main thread at the end of
/// a chunk and by the flusher every tick.
pub(crate) struct Outbox {
    held: Mutex<Held>,
    became_busy: Condvar,
    connection: Arc<Connection>,
    /// Most bytes of outputs one results frame carries.
    limit: usize,
    /// Where the item in hand is kept for the parent, when this system has shared memory.
    in_hand: Option<InHand>,
}

impl Outbox {
    pub(crate) fn new(connection: Arc<Connection>, limit: usize, in_hand: Option<InHand>) -> Self {
        Self {
            held: Mutex::default(),
            became_busy: Condvar::new(),
            connection,
            limit,
            in_hand,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the held results. A parent that is gone ends this process through the reader.
    fn send_held(&self, held: &mut Held, measured: Option<Measured>) {
        self.send_results(held.job, &mut held.results, held.count, measured);
        held.results.clear();
        held.count = 0;
    }

    /// Sends `count` results of `job`, written as a results frame carries them, and what a
    /// chunk measured at its end; `results` is left as it was.
    pub(crate) fn send_results(
        &self,
        job: u64,
        results: &mut Vec<u8>,
        count: u64,
        measured: Option<Measured>,
    ) {
        if count == 0 && measured.is_none() {
            return;
        }
        let mut head = Vec::with_capacity(RESULTS_HEAD_AND_TAIL);
        let results_end = results.len();
        let written = pool::results_head(&mut head, job, count)
            .and_then(|()| frame::append_into(&measured, results));
        let sent = match written {
            Ok(()) => self
                .connection
                .send_with_payload(&head, results)
                .map_err(Error::from),
            Err(error) => Err(Error::from(error)),
        };
        results.truncate(results_end);
        // The room check keeps batches within a frame; should it ever be short, each result
        // goes alone rather than the batch being lost.
        if let Err(Error::TooLarge { .. } | Error::Malformed { .. }) = sent {
            let results = ResultsReader::over(job, count, results);
            self.send_one_by_one(results, measured);
        }
    }

    /// Whether a chunk watched as `reporting` runs in blocks (`blocks.rs`): when only its
    /// results are watched and a page pins a crash.
    pub(crate) fn takes_blocks(&self, reporting: Reporting) -> bool {
        reporting == Reporting::Results && self.in_hand.is_some()
    }

    /// Most bytes of outputs one results frame carries.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Sends each result in a frame of its own; one that cannot fit even alone is reported
    /// as too large, so the parent always hears of every item.
    fn send_one_by_one(&self, mut results: ResultsReader<'_>, measured: Option<Measured>) {
        let job = results.job;
        let mut next = results.next_result();
        while let Some(Ok(result)) = next {
            next = results.next_result();
            let index = result.index;
            let measured = if next.is_none() { measured } else { None };
            let alone = ToPool::Results {
                job,
                results: vec![result],
                measured,
            };
            let Err(Error::TooLarge { size, .. }) =
                self.connection.send(&alone).map_err(Error::from)
            else {
                continue;
            };
            let failure = ItemFailure::TooLarge {
                size,
                limit: self.limit as u64,
            };
            let _ = self.connection.send(&ToPool::Results {
                job,
                results: vec![WireResult {
                    index,
                    outcome: WireOutcome::Failed(failure),
                }],
                measured,
            });
        }
    }

    fn report_running(&self, held: &mut Held, started_nanos: u64, spent: Option<u32>) {
        let Some(current) = held.current else {
            return;
        };
        self.send_held(held, None);
        held.reported = true;
        let _ = self.connection.send(&ToPool::Running {
            job: current.job,
            index: current.index,
            started_nanos,
            spent,
        });
    }

    /// The flusher: every tick while busy, sends finished results, and says which item runs
    /// once one has run for a whole tick.
    pub(crate) fn flush_every_tick(&self) {
        let mut seen: Option<(u64, u64)> = None;
        let mut held = self.lock();
        loop {
            // Idle, or a long item already reported with nothing held: no tick until the
            // next item starts, so a long item is not interrupted every tick for nothing.
            if !held.busy || (held.reported && held.count == 0) {
                held.parked = true;
                held = self
                    .became_busy
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
                held.parked = false;
                // Woken as an item starts (or soon after): a tick from now it has run a tick.
                seen = held
                    .current
                    .map(|current| (current.serial, monotonic_nanos()));
                continue;
            }
            held = self
                .became_busy
                .wait_timeout(held, TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let now = monotonic_nanos();
            match (held.current, seen) {
                (Some(current), Some((serial, since))) if current.serial == serial => {
                    if !held.reported {
                        self.report_running(&mut held, since, None);
                    }
                }
                (Some(current), _) => seen = Some((current.serial, now)),
                (None, _) => seen = None,
            }
            self.send_held(&mut held, None);
        }
    }
}

impl Outbox {
    fn start_held(&self, held: &mut Held, job: u64, index: u64, reporting: Reporting) {
        if held.job != job {
            self.send_held(held, None);
            held.job = job;
        }
        held.serial = held.serial.wrapping_add(1);
        held.current = Some(Current {
            job,
            index,
            serial: held.serial,
        });
        // Which item runs is said when its chunk is watched for it, and always by a worker
        // without a page (the parent's only way to pin a crash then).
        held.reported = reporting == Reporting::Results && self.in_hand.is_some();
        if reporting.each() {
            self.report_running(held, monotonic_nanos(), None);
        }
        held.busy = true;
        if !held.reported {
            self.wake_flusher(held);
        }
    }

    /// Wakes the flusher if it is parked. Its flag is cleared here, not only by the flusher
    /// once it runs: until the woken flusher gets a core, every start would otherwise wake it
    /// again — a system call per item.
    fn wake_flusher(&self, held: &mut Held) {
        if held.parked {
            held.parked = false;
            self.became_busy.notify_one();
        }
    }

    /// The outcome as it travels, and its size: one too large for a frame becomes
    /// [`ItemFailure::TooLarge`]. A failure's message travels too; counting it as nothing let
    /// batches of long panic messages outgrow the frame.
    pub(crate) fn sized<'a>(
        &self,
        outcome: Result<&'a [u8], ItemFailure>,
    ) -> (Result<&'a [u8], ItemFailure>, usize) {
        let size = match &outcome {
            Ok(output) => Some(output.len()),
            Err(failure) => frame::encoded_len(failure).ok(),
        };
        match size {
            Some(size) if size <= self.limit => (outcome, size),
            size => {
                let too_large = ItemFailure::TooLarge {
                    size: size.map_or(u64::MAX, |size| size as u64),
                    limit: self.limit as u64,
                };
                let size = frame::encoded_len(&too_large).unwrap_or(self.limit);
                (Err(too_large), size)
            }
        }
    }

    fn finish_held(
        &self,
        held: &mut Held,
        (job, index): (u64, u64),
        outcome: Result<&[u8], ItemFailure>,
        reporting: Reporting,
    ) {
        if held
            .current
            .is_none_or(|c| c.job != job || c.index != index)
        {
            return; // Already reported (an overrun report raced the hook's return).
        }
        held.current = None;
        let (outcome, size) = self.sized(outcome);
        let room = held.results.len() + size + RESULT_ENTRY_ROOM + RESULTS_HEAD_AND_TAIL;
        if room > self.limit + RESULT_OVERHEAD {
            self.send_held(held, None);
        }
        put_outcome(&mut held.results, index, outcome);
        held.count += 1;
        if reporting.each() || held.results.len() >= FLUSH_BYTES {
            self.send_held(held, None);
        }
    }
}

/// Appends `index`'s outcome as a results frame carries it ([`put_result`](pool::put_result)).
pub(crate) fn put_outcome(buffer: &mut Vec<u8>, index: u64, outcome: Result<&[u8], ItemFailure>) {
    let start = buffer.len();
    if pool::put_result(buffer, index, outcome.as_ref().copied()).is_err() {
        // Only a failure goes through the codec, and every failure encodes.
        buffer.truncate(start);
        let failure = ItemFailure::Encode("the item's failure could not be encoded".into());
        let _ = pool::put_result(buffer, index, Err(&failure));
    }
}

impl ItemSink for Outbox {
    fn started(&self, job: u64, index: u64, reporting: Reporting) {
        self.start_held(&mut self.lock(), job, index, reporting);
    }

    fn finished(
        &self,
        job: u64,
        index: u64,
        outcome: Result<&[u8], ItemFailure>,
        reporting: Reporting,
    ) {
        self.finish_held(&mut self.lock(), (job, index), outcome, reporting);
    }

    fn finished_then_started(
        &self,
        job: u64,
        index: u64,
        outcome: Result<&[u8], ItemFailure>,
        reporting: Reporting,
        next: Option<u64>,
    ) {
        let mut held = self.lock();
        self.finish_held(&mut held, (job, index), outcome, reporting);
        if let Some(next) = next {
            self.start_held(&mut held, job, next, reporting);
            // Results held while the chunk goes on: the flusher sends them a tick from now.
            if held.count > 0 {
                self.wake_flusher(&mut held);
            }
        }
    }

    fn hold(&self, ordinal: u64) -> bool {
        self.in_hand
            .as_ref()
            .map(|page| page.hold(ordinal))
            .is_some()
    }

    fn running_now(&self, job: u64, index: u64, spent: Option<u32>) {
        let mut held = self.lock();
        if held
            .current
            .is_some_and(|c| c.job == job && c.index == index)
        {
            // A start the parent already heard of is kept there; this one only pins the item.
            self.report_running(&mut held, monotonic_nanos(), spent);
        }
    }

    fn chunk_done(&self, measured: Measured) {
        let mut held = self.lock();
        self.send_held(&mut held, Some(measured));
        held.busy = false;
    }

    fn overrun_ends_process(&self) -> bool {
        true
    }
}
