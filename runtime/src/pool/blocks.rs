//! A worker process's fast path for a function's items when only their results are watched
//! ([`Reporting::Results`]) and the worker has a page: items are admitted in blocks and their
//! results kept by the runner and sent by it, so an item costs one store to the page and its
//! own work — not two locks, a clock read and a word with the flusher.
//!
//! - **Blocks**: one admission from the [`Inbox`] per block, whose size follows the items'
//!   cost (doubling from one while a block takes under [`BLOCK_WORK`], halving past it), so
//!   a release still gives back all but at most about [`BLOCK_WORK`] of unstarted work.
//! - **Results** are written as a results frame carries them and sent by the runner itself
//!   every [`TICK`] of work (checked at each block's end), when a frame would be full, and at
//!   the chunk's end with what the chunk measured. A crash loses the results not sent yet, and
//!   those items run again elsewhere, as for any worker whose results were lost with it; the
//!   page pins the crash itself on the item it hit.

use std::time::{Duration, Instant};

use crate::pool::function::Callable;
use crate::pool::inbox::Inbox;
use crate::pool::outbox::{ItemSink, Outbox, TICK};
use crate::protocol::pool::{self, Chunk, Measured, RESULT_ENTRY_ROOM, RESULTS_HEAD_AND_TAIL};

/// Work a block aims for: it bounds what a release cannot take back.
const BLOCK_WORK: Duration = Duration::from_micros(100);
/// Most items in one block.
const MOST_IN_BLOCK: u64 = 256;

/// Runs `chunk`'s items with `callable`, `first` being the ordinal of its first item.
pub(crate) fn run_in_blocks<C>(
    chunk: &Chunk<'_>,
    first: u64,
    inbox: &Inbox<C>,
    outbox: &Outbox,
    callable: &Callable,
    output: &mut Vec<u8>,
) {
    let started = Instant::now();
    let mut results = Results::new(chunk.job);
    let mut last_sent = started;
    let mut block = 1u64;
    let mut ordinal = first;
    let mut ran = 0u32;
    let mut items = chunk.items.iter();
    'chunk: loop {
        let admitted = inbox.admit_block(ordinal, block);
        if admitted == 0 {
            break;
        }
        let block_started = Instant::now();
        for _ in 0..admitted {
            let Some(item) = items.next() else {
                break 'chunk;
            };
            outbox.hold(ordinal);
            ordinal += 1;
            ran = ran.saturating_add(1);
            let outcome = callable
                .call(item.bytes, output)
                .map(|()| output.as_slice());
            let (outcome, size) = outbox.sized(outcome);
            if !results.has_room(size, outbox.limit()) {
                results.send(outbox, None);
            }
            results.put(item.index, outcome);
        }
        let now = Instant::now();
        let took = now.saturating_duration_since(block_started);
        block = if took < BLOCK_WORK {
            (block * 2).min(MOST_IN_BLOCK)
        } else {
            (block / 2).max(1)
        };
        if now.saturating_duration_since(last_sent) >= TICK {
            results.send(outbox, None);
            last_sent = now;
        }
    }
    let measured = Measured {
        items: ran,
        nanos: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    };
    results.send(outbox, Some(measured));
}

/// Finished results not sent yet, as a results frame carries them.
struct Results {
    job: u64,
    bytes: Vec<u8>,
    count: u64,
}

impl Results {
    fn new(job: u64) -> Self {
        Self {
            job,
            bytes: Vec::new(),
            count: 0,
        }
    }

    /// Whether a result of `size` bytes still fits in one frame of outputs of at most
    /// `limit` bytes, beside what is kept.
    fn has_room(&self, size: usize, limit: usize) -> bool {
        let room = self.bytes.len() + size + RESULT_ENTRY_ROOM + RESULTS_HEAD_AND_TAIL;
        self.count == 0 || room <= limit + pool::RESULT_OVERHEAD
    }

    fn put(&mut self, index: u64, outcome: Result<&[u8], pool::ItemFailure>) {
        crate::pool::outbox::put_outcome(&mut self.bytes, index, outcome);
        self.count += 1;
    }

    /// Sends what is kept (and what the chunk measured, at its end).
    fn send(&mut self, outbox: &Outbox, measured: Option<Measured>) {
        outbox.send_results(self.job, &mut self.bytes, self.count, measured);
        self.bytes.clear();
        self.count = 0;
    }
}
