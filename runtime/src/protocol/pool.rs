//! The messages between a [`Pool`](crate::Pool) and its workers.
//!
//! A worker starts like any child (token, then [`Start`](super::Start) with the role
//! `PoolWorker`); the start's state is a [`WorkerStart`] carrying the parent's build identity.
//! The worker answers [`ToPool::Ready`] only when that identity is its own, so no code address
//! is ever used by a different build. Then the parent sends [`Chunk`]s of encoded items and
//! the worker sends back, in item order:
//!
//! - [`ToPool::Results`]: finished items, batched in time rather than one frame per item;
//! - [`ToPool::Running`]: the item now running, with its start on the shared monotonic clock,
//!   sent only once an item has run for a while (or at once in an `isolated` chunk). All
//!   results before it were sent first, so the parent knows exactly which item a crash hit.
//!
//! The worker has one reader that always drains its connection, and the parent sends a worker
//! at most two chunks at a time, so neither side's writes wait on the other's work.

use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// The state of a pool worker's start message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerStart {
    /// The parent's build identity; the worker refuses to run for any other.
    #[serde(with = "serde_bytes")]
    pub(crate) build: Vec<u8>,
}

/// A function that travels: its own and its trampoline's address minus the runtime's base
/// symbol's, in the parent. Valid only in a process of the same build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FunctionOffsets {
    /// The monomorphised trampoline that decodes an item, calls and encodes the output.
    pub(crate) trampoline: i64,
    /// The `fn` pointer the trampoline calls.
    pub(crate) function: i64,
}

/// What runs the items of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TaskRef<'a> {
    /// A `fn` pointer and its trampoline, as offsets from the runtime's base symbol.
    Function {
        /// Where the function and its trampoline lie, in the parent (the same build).
        offset: FunctionOffsets,
    },
    /// A registered `#[skprocess]` type: each item is a state whose lifecycle runs in the
    /// worker.
    Process {
        /// The type's registry key.
        key: &'a str,
    },
}

/// One item on the wire: its index in the input and its encoded value (or output).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireItem<'a> {
    pub(crate) index: u64,
    #[serde(borrow, with = "serde_bytes")]
    pub(crate) bytes: &'a [u8],
}

/// Parent → worker: a batch of items of one job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Chunk<'a> {
    pub(crate) job: u64,
    #[serde(borrow)]
    pub(crate) task: TaskRef<'a>,
    /// Report each item's start before running it and each result at once: for items
    /// suspected of crashing their worker, so a crash is pinned on the right one.
    pub(crate) isolated: bool,
    #[serde(borrow)]
    pub(crate) items: Vec<WireItem<'a>>,
}

/// Why one item has no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ItemFailure {
    /// The function panicked; the panic's text.
    Panicked(String),
    /// A `#[skprocess]` item failed as a process does (hook failure, timeout, too large).
    Process(Failure),
    /// The item could not be decoded as the function's argument.
    Decode(String),
    /// The output could not be encoded.
    Encode(String),
    /// The encoded output does not fit in a frame.
    TooLarge {
        /// The output's encoded size.
        size: u64,
        /// The most a result frame can carry.
        limit: u64,
    },
    /// The worker does not know the task (a process type that is not registered).
    UnknownTask(String),
}

/// The outcome of one item on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireOutcome<'a> {
    /// The encoded output.
    Output(#[serde(borrow, with = "serde_bytes")] &'a [u8]),
    /// Why there is none.
    Failed(ItemFailure),
}

/// One finished item.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireResult<'a> {
    pub(crate) index: u64,
    #[serde(borrow)]
    pub(crate) outcome: WireOutcome<'a>,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToPool<'a> {
    /// The build identities match; chunks may come.
    Ready,
    /// The worker will not run for this parent; why.
    Refused(String),
    /// Finished items of `job`, in the order they ran; at the end of a chunk, also how long
    /// the chunk's items took in the worker.
    Results {
        job: u64,
        #[serde(borrow)]
        results: Vec<WireResult<'a>>,
        measured: Option<Measured>,
    },
    /// Item `index` of `job` is running since `started_nanos` (the shared monotonic clock);
    /// every item before it in this worker has been reported.
    Running {
        job: u64,
        index: u64,
        started_nanos: u64,
    },
}

/// How long a chunk's items took to run in the worker: the cost per item that sizes the
/// next chunks, free of the time spent travelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Measured {
    pub(crate) items: u32,
    pub(crate) nanos: u64,
}

/// Bytes a results frame needs beside its outputs: the variant, the job, and per result its
/// index, outcome tag and length.
pub(crate) const RESULT_OVERHEAD: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame;

    #[test]
    fn a_chunk_round_trips_borrowing_its_items() {
        let items = vec![
            WireItem {
                index: 3,
                bytes: &[1, 2],
            },
            WireItem {
                index: 9,
                bytes: &[],
            },
        ];
        let chunk = Chunk {
            job: 7,
            task: TaskRef::Process { key: "k" },
            isolated: true,
            items,
        };
        let encoded = frame::encode(&chunk).unwrap();
        let decoded: Chunk<'_> = frame::decode(&encoded).unwrap();
        assert_eq!(
            (decoded.job, decoded.task),
            (7, TaskRef::Process { key: "k" })
        );
        assert_eq!(decoded.items[0].bytes, &[1, 2]);
        assert_eq!(decoded.items[1].index, 9);
    }
}
