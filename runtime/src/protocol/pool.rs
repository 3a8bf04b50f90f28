//! The messages between a [`Pool`](crate::Pool) and its workers.
//!
//! A worker starts like any child (token, then [`Start`](super::Start) with the role
//! `PoolWorker`); the start's state is a [`WorkerStart`] carrying the parent's build identity.
//! The worker answers [`ToPool::Ready`] only when that identity is its own, so no code address
//! is ever used by a different build; where it can, it sends with it the page in which it keeps
//! the item in hand (`pool/in_hand.rs`), which the parent reads when the worker dies. Then the parent sends [`ToWorker`] frames — chunks of
//! encoded items, and now and then a release — and the worker sends back, in item order:
//!
//! - [`ToPool::Results`]: finished items, batched in time rather than one frame per item;
//! - [`ToPool::Running`]: the item now running, with its start on the shared monotonic clock,
//!   sent once an item has run for a while when the chunk asks for it ([`Reporting`]: a job
//!   with a timeout, or a worker without a page), or at once in a chunk of suspects. All
//!   results before it were sent first, so the parent knows exactly which item a crash hit;
//! - [`ToPool::Released`]: the answer to a release, naming the first item (by its ordinal in
//!   the order sent) that it gave back unstarted, with everything after it.
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
    /// Whether the parent reads an in-hand page (`pool/in_hand.rs`): a pool's worker sends
    /// one with its `Ready` where it can; a one-off `run` or a resident worker does not.
    pub(crate) in_hand: bool,
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

/// What a worker reports of a chunk's items besides their results, which it sends in
/// batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reporting {
    /// Results only: a crash is pinned by the worker's page (a worker without one reports as
    /// for [`Reporting::Running`]).
    Results,
    /// Also which item runs, once it has run for a tick: for a job with a timeout, which
    /// counts from an item's start.
    Running,
    /// Each item's start before it runs, and its result at once: for items suspected of
    /// crashing their worker, so a crash is pinned on the right one.
    Each,
}

impl Reporting {
    /// Whether each start and result is reported on its own.
    pub(crate) fn each(self) -> bool {
        self == Reporting::Each
    }
}

/// Parent → worker: a batch of items of one job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Chunk<'a> {
    pub(crate) job: u64,
    #[serde(borrow)]
    pub(crate) task: TaskRef<'a>,
    /// What the worker reports besides results.
    pub(crate) reporting: Reporting,
    #[serde(borrow)]
    pub(crate) items: Vec<WireItem<'a>>,
    /// `(index, spent)` for each `#[skprocess]` item that already spent lives on earlier
    /// attempts (its workers crashed or its hooks overran); it starts with the rest. Empty
    /// for most chunks, so it costs one byte.
    pub(crate) lives_spent: Vec<(u64, u32)>,
}

impl Chunk<'_> {
    /// Lives item `index` spent on earlier attempts.
    pub(crate) fn lives_spent_by(&self, index: u64) -> u32 {
        self.lives_spent
            .iter()
            .find(|(item, _)| *item == index)
            .map_or(0, |(_, spent)| *spent)
    }
}

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// Items to run after those already sent.
    #[serde(borrow)]
    Chunk(Chunk<'a>),
    /// Give back every item sent and not started yet; the worker answers
    /// [`ToPool::Released`]. The parent sends no chunk while a release waits for its answer.
    Release,
}

/// The head of a [`ToWorker`] frame: what a worker's reader needs to queue a chunk (its item
/// count) without decoding its items. Postcard writes a struct's fields in order and a
/// sequence's length before its elements, so this reads a prefix of a [`ToWorker`] frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorkerHead<'a> {
    /// A chunk's fields up to its item count.
    Chunk {
        /// The chunk's job (read past).
        _job: u64,
        /// What runs its items (read past).
        #[serde(borrow)]
        _task: TaskRef<'a>,
        /// What the worker reports (read past).
        _reporting: Reporting,
        /// How many items it has.
        items: u64,
    },
    /// A release.
    Release,
}

/// Appends one item of a chunk as [`WireItem`] is encoded (index, length, bytes), written by
/// hand: a chunk's items are most of its bytes and most of its encoding's work.
pub(crate) fn put_item(buffer: &mut Vec<u8>, index: u64, bytes: &[u8]) {
    use crate::transport::frame::put_varint;
    put_varint(buffer, index);
    put_varint(buffer, bytes.len() as u64);
    crate::transport::frame::append_bytes(buffer, bytes);
}

impl<'a> ToWorkerHead<'a> {
    /// Reads the head of a [`ToWorker`] frame, ignoring the rest.
    pub(crate) fn read(frame: &'a [u8]) -> Result<Self, crate::transport::frame::WireError> {
        postcard::take_from_bytes(frame)
            .map(|(head, _)| head)
            .map_err(|e| crate::transport::frame::WireError::Malformed(e.to_string()))
    }
}

/// The head of a [`ToPool`] frame: the variant, and for results their job and count, so a
/// results frame can be read result by result ([`ResultsReader`]) with no vector of them, and
/// written so too ([`results_head`], [`put_result`]).
#[derive(Debug, Serialize, Deserialize)]
enum ToPoolHead {
    Ready,
    Refused,
    Results { job: u64, count: u64 },
    Running,
    Released,
}

/// Most bytes [`results_head`] writes, and the measured tail of a results frame takes.
pub(crate) const RESULTS_HEAD_AND_TAIL: usize = 40;

/// Most bytes [`put_result`] writes for an output beside the output's own.
pub(crate) const RESULT_ENTRY_ROOM: usize = 21;

/// Appends the head of a [`ToPool::Results`] frame of `count` results of `job`: the variant,
/// the job and the count, as encoding the whole message writes them. The results follow
/// ([`put_result`]), then what was measured (an encoded `Option<Measured>`).
pub(crate) fn results_head(
    buffer: &mut Vec<u8>,
    job: u64,
    count: u64,
) -> Result<(), crate::transport::frame::WireError> {
    crate::transport::frame::append_into(&ToPoolHead::Results { job, count }, buffer)
}

/// Appends one result of a results frame, as encoding the whole message writes it: an output
/// written by hand (index, the `Output` tag, length, bytes), a failure by the codec.
pub(crate) fn put_result(
    buffer: &mut Vec<u8>,
    index: u64,
    outcome: Result<&[u8], &ItemFailure>,
) -> Result<(), crate::transport::frame::WireError> {
    use crate::transport::frame::put_varint;
    match outcome {
        Ok(output) => {
            put_varint(buffer, index);
            buffer.push(0);
            put_varint(buffer, output.len() as u64);
            crate::transport::frame::append_bytes(buffer, output);
            Ok(())
        }
        Err(failure) => {
            let result = WireResult {
                index,
                outcome: WireOutcome::Failed(failure.clone()),
            };
            crate::transport::frame::append_into(&result, buffer)
        }
    }
}

/// A [`ToPool::Results`] frame read in place: its job, then each result, then what was
/// measured. Reads exactly what decoding the whole [`ToPool`] would.
pub(crate) struct ResultsReader<'a> {
    /// The job the results belong to.
    pub(crate) job: u64,
    remaining: u64,
    rest: &'a [u8],
}

fn malformed(error: postcard::Error) -> crate::transport::frame::WireError {
    crate::transport::frame::WireError::Malformed(error.to_string())
}

impl<'a> ResultsReader<'a> {
    /// Opens a results frame; `None` when the frame is another message (or no message).
    pub(crate) fn open(frame: &'a [u8]) -> Option<Self> {
        match postcard::take_from_bytes(frame) {
            Ok((ToPoolHead::Results { job, count }, rest)) => Some(Self {
                job,
                remaining: count,
                rest,
            }),
            Ok((
                ToPoolHead::Ready
                | ToPoolHead::Refused
                | ToPoolHead::Running
                | ToPoolHead::Released,
                _,
            ))
            | Err(_) => None,
        }
    }

    /// The results `put_result` wrote into `bytes`, `count` of them, read one by one.
    pub(crate) fn over(job: u64, count: u64, bytes: &'a [u8]) -> Self {
        Self {
            job,
            remaining: count,
            rest: bytes,
        }
    }

    /// How many results are left, bounded by the bytes left (each takes at least three), so
    /// a lying count reserves nothing.
    pub(crate) fn len_hint(&self) -> usize {
        usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(self.rest.len() / 3)
    }

    /// The next result, `None` after the last.
    pub(crate) fn next_result(
        &mut self,
    ) -> Option<Result<WireResult<'a>, crate::transport::frame::WireError>> {
        self.remaining = self.remaining.checked_sub(1)?;
        if let Some((result, rest)) = output_in_place(self.rest) {
            self.rest = rest;
            return Some(Ok(result));
        }
        Some(match postcard::take_from_bytes(self.rest) {
            Ok((result, rest)) => {
                self.rest = rest;
                Ok(result)
            }
            Err(e) => {
                self.remaining = 0;
                Err(malformed(e))
            }
        })
    }

    /// What was measured, once every result was read; the frame must end there.
    pub(crate) fn finish(self) -> Result<Option<Measured>, crate::transport::frame::WireError> {
        if self.remaining > 0 {
            return Err(crate::transport::frame::WireError::Malformed(
                "results left unread".into(),
            ));
        }
        crate::transport::frame::decode(self.rest)
    }
}

/// An output result read by hand, as the codec would read it (index, the `Output` variant's
/// tag 0, the length and the bytes): the common case without the codec's per-field calls.
/// `None` for anything else (a failure, an odd varint, a cut frame), which the codec reads.
fn output_in_place(bytes: &[u8]) -> Option<(WireResult<'_>, &[u8])> {
    use crate::transport::frame::take_varint;
    let (index, rest) = take_varint(bytes)?;
    let (0, rest) = take_varint(rest)? else {
        return None;
    };
    let (len, rest) = take_varint(rest)?;
    let len = usize::try_from(len).ok()?;
    let output = rest.get(..len)?;
    let rest = rest.get(len..)?;
    let outcome = WireOutcome::Output(output);
    Some((WireResult { index, outcome }, rest))
}

/// Why one item has no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ItemFailure {
    /// The function panicked: its text, location and backtrace.
    Panicked(Box<crate::panics::PanicReport>),
    /// A `#[skprocess]` item failed as a process does (hook failure, timeout, too large).
    Process(Box<Failure>),
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
    /// every item before it in this worker has been reported. `spent` is set when a
    /// `#[skprocess]` item's count of spent lives changed (see
    /// [`ItemHost::lives_spent`](crate::child::pool_item::ItemHost::lives_spent)), so a crash
    /// after it retries the item only with the lives it has left.
    Running {
        job: u64,
        index: u64,
        started_nanos: u64,
        spent: Option<u32>,
    },
    /// The answer to [`ToWorker::Release`]: counting the items sent to this worker in order
    /// from 0, items from `next` on were not started and never will be; the parent runs them
    /// elsewhere. Results of items before `next` may still follow. Both sides number the
    /// next chunk's items from `next` on.
    Released { next: u64 },
}

/// How long a chunk's items took to run in the worker: the cost per item that sizes the
/// next chunks, free of the time spent travelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Measured {
    pub(crate) items: u32,
    pub(crate) nanos: u64,
}

/// Bytes a results frame with one output needs beside it: the frame's head and measured tail,
/// and the output's index, tag and length. An output of at most the frame limit less this
/// always fits in a frame of its own.
pub(crate) const RESULT_OVERHEAD: usize = RESULTS_HEAD_AND_TAIL + RESULT_ENTRY_ROOM;

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
            reporting: Reporting::Each,
            items,
            lives_spent: vec![(9, 2)],
        };
        let encoded = frame::encode(&chunk).unwrap();
        let decoded: Chunk<'_> = frame::decode(&encoded).unwrap();
        assert_eq!(
            (decoded.job, decoded.task),
            (7, TaskRef::Process { key: "k" })
        );
        assert_eq!(decoded.items[0].bytes, &[1, 2]);
        assert_eq!(decoded.items[1].index, 9);
        assert_eq!(
            (decoded.lives_spent_by(9), decoded.lives_spent_by(3)),
            (2, 0)
        );
    }

    #[test]
    fn a_worker_frame_head_reads_the_chunk_item_count_and_a_release() {
        let chunk = Chunk {
            job: 300,
            task: TaskRef::Process { key: "key" },
            reporting: Reporting::Running,
            items: (0..200)
                .map(|index| WireItem {
                    index,
                    bytes: &[1, 2, 3],
                })
                .collect(),
            lives_spent: Vec::new(),
        };
        let encoded = frame::encode(&ToWorker::Chunk(chunk)).unwrap();
        let head: ToWorkerHead<'_> = ToWorkerHead::read(&encoded).unwrap();
        assert!(
            matches!(
                head,
                ToWorkerHead::Chunk {
                    _job: 300,
                    items: 200,
                    _reporting: Reporting::Running,
                    ..
                }
            ),
            "{head:?}"
        );
        let encoded = frame::encode(&ToWorker::Release).unwrap();
        let head: ToWorkerHead<'_> = ToWorkerHead::read(&encoded).unwrap();
        assert!(matches!(head, ToWorkerHead::Release), "{head:?}");
    }

    #[test]
    fn a_results_frame_reads_result_by_result_as_the_whole_message() {
        let failure = ItemFailure::Decode("boom".into());
        let message = ToPool::Results {
            job: 77,
            results: vec![
                WireResult {
                    index: 1,
                    outcome: WireOutcome::Output(&[4, 5, 6]),
                },
                WireResult {
                    index: 300,
                    outcome: WireOutcome::Failed(failure.clone()),
                },
            ],
            measured: Some(Measured {
                items: 2,
                nanos: 99,
            }),
        };
        let encoded = frame::encode(&message).unwrap();
        let mut reader = ResultsReader::open(&encoded).unwrap();
        assert_eq!((reader.job, reader.len_hint()), (77, 2));
        let first = reader.next_result().unwrap().unwrap();
        assert!(matches!(first.outcome, WireOutcome::Output(&[4, 5, 6])));
        let second = reader.next_result().unwrap().unwrap();
        assert_eq!(second.index, 300);
        assert!(matches!(second.outcome, WireOutcome::Failed(f) if f == failure));
        assert!(reader.next_result().is_none());
        assert_eq!(
            reader.finish().unwrap(),
            Some(Measured {
                items: 2,
                nanos: 99
            })
        );
        // Other messages are not results; a cut frame is an error, not a short batch.
        for other in [ToPool::Ready, ToPool::Released { next: 3 }] {
            assert!(ResultsReader::open(&frame::encode(&other).unwrap()).is_none());
        }
        let mut cut = ResultsReader::open(&encoded[..encoded.len() - 8]).unwrap();
        assert!(cut.next_result().unwrap().is_ok());
        assert!(cut.next_result().unwrap().is_err());
        assert!(cut.finish().is_err());
    }

    #[test]
    fn a_results_frame_written_by_parts_is_the_whole_message() {
        let failure = ItemFailure::Decode("boom".into());
        let big = vec![7u8; 200];
        let outputs: [(u64, Result<&[u8], &ItemFailure>); 4] = [
            (1, Ok(&[4, 5, 6])),
            (300, Err(&failure)),
            (u64::MAX, Ok(&big)),
            (5, Ok(&[])),
        ];
        for measured in [
            None,
            Some(Measured {
                items: 4,
                nanos: 1 << 40,
            }),
        ] {
            let results = outputs
                .iter()
                .map(|(index, outcome)| WireResult {
                    index: *index,
                    outcome: match outcome {
                        Ok(bytes) => WireOutcome::Output(bytes),
                        Err(failure) => WireOutcome::Failed((*failure).clone()),
                    },
                })
                .collect();
            let whole = ToPool::Results {
                job: 1 << 20,
                results,
                measured,
            };
            let mut parts = Vec::new();
            results_head(&mut parts, 1 << 20, outputs.len() as u64).unwrap();
            let head = parts.len();
            for (index, outcome) in outputs {
                put_result(&mut parts, index, outcome).unwrap();
            }
            let body = parts.len();
            frame::append_into(&measured, &mut parts).unwrap();
            assert_eq!(parts, frame::encode(&whole).unwrap());
            assert!(head + (parts.len() - body) <= RESULTS_HEAD_AND_TAIL);
            // And read back one by one from the results alone.
            let mut reader = ResultsReader::over(1, 4, &parts[head..body]);
            let indices: Vec<u64> = std::iter::from_fn(|| reader.next_result())
                .map(|result| result.unwrap().index)
                .collect();
            assert_eq!(indices, [1, 300, u64::MAX, 5]);
        }
    }
}
