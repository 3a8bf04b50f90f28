//! How a worker process's chunks are written, so the dispatcher never blocks on a worker
//! that does not read (stopped by a signal, a debugger or a frozen cgroup). A chunk is
//! written at once by the thread serving the dispatcher when the socket takes it without
//! waiting (the usual case: no thread is woken to write it); what it cannot write at once
//! goes to the worker's writer thread, the only one that waits for this worker. A frame the
//! socket took in part is finished before any other (the connection keeps its rest), so
//! frames never interleave whoever writes them.
//!
//! The scheduler keeps at most [`PIPELINE`] chunks in flight per worker, and sends a worker no
//! chunk while a release (which travels the same way, behind them) waits for its answer, so
//! the hand-over queue is bounded by construction; a queue that is full anyway, or a writer
//! that stopped because a write failed, is reported to the caller, which ends the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Instant;

use crate::pool::scheduler::{ChunkItems, ItemView, JobId, PIPELINE, Task};
use crate::protocol::pool::{Chunk, Reporting, TaskRef, ToWorker, ToWorkerHead, WireItem};
use crate::transport::Connection;
use crate::transport::frame;

/// The dispatcher's side of a worker's writes.
pub(crate) struct ChunkWriter {
    connection: Arc<Connection>,
    /// To the writer thread: frames to write, and an empty one to finish a frame the socket
    /// took in part.
    frames: SyncSender<Vec<u8>>,
    /// Frames handed to the writer thread and not yet written whole: while there are any, a
    /// new frame goes behind them.
    handed: Arc<AtomicUsize>,
}

impl ChunkWriter {
    /// Starts the writer thread of `connection`, which calls `on_failure` (ending the worker)
    /// when a write fails; `None` if the OS gives no thread.
    pub(crate) fn start(
        connection: Arc<Connection>,
        on_failure: impl FnOnce() + Send + 'static,
    ) -> Option<Self> {
        // Room for every chunk the scheduler may have in flight, and one more.
        let (frames, queued) = mpsc::sync_channel::<Vec<u8>>(PIPELINE + 1);
        let handed = Arc::new(AtomicUsize::new(0));
        let writer = Self {
            connection: Arc::clone(&connection),
            frames,
            handed: Arc::clone(&handed),
        };
        std::thread::Builder::new()
            .name("skprocess-pool-writer".to_owned())
            .spawn(move || {
                for frame in queued {
                    let written = if frame.is_empty() {
                        connection.flush_before(None).map(drop)
                    } else {
                        let written = connection.send_with_payload(&[], &frame);
                        handed.fetch_sub(1, Ordering::SeqCst);
                        written
                    };
                    if written.is_err() {
                        // The worker is dying or broke the protocol (or the chunk outgrew a
                        // frame): end it now, so its end settles its items.
                        on_failure();
                        return;
                    }
                }
            })
            .ok()?;
        Some(writer)
    }

    /// Writes or queues one chunk without waiting; `false` when it cannot be encoded or the
    /// worker cannot take it (its queue is full, or a write failed).
    pub(crate) fn chunk(
        &self,
        job: JobId,
        task: Task,
        reporting: Reporting,
        items: ChunkItems<'_>,
    ) -> bool {
        encode_chunk(job, task, reporting, &items).is_ok_and(|encoded| self.write(encoded))
    }

    /// Queues a release behind the chunks sent before it; `false` as for [`chunk`](Self::chunk).
    pub(crate) fn release(&self) -> bool {
        frame::encode(&ToWorker::Release).is_ok_and(|encoded| self.write(encoded))
    }

    /// Writes `frame` now if the socket takes it without waiting, else hands it to the
    /// writer thread; `false` when the worker cannot take it.
    fn write(&self, frame: Vec<u8>) -> bool {
        if self.handed.load(Ordering::SeqCst) == 0 {
            let now = Some(Instant::now());
            match self.connection.send_with_payload_before(&[], &frame, now) {
                Ok(true) if self.connection.has_unsent() => return self.finish_later(),
                Ok(true) => return true,
                // Busy (the writer thread finishes a frame) or full: the thread writes it.
                Ok(false) => {}
                Err(_) => return false,
            }
        }
        self.handed.fetch_add(1, Ordering::SeqCst);
        if self.frames.try_send(frame).is_err() {
            self.handed.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Asks the writer thread to finish the frame the socket took in part. A full queue
    /// already holds work that finishes it first.
    fn finish_later(&self) -> bool {
        !matches!(
            self.frames.try_send(Vec::new()),
            Err(TrySendError::Disconnected(_))
        )
    }
}

/// A chunk as it travels (or as a worker thread reads it): the items borrowed, and the lives
/// each `#[skprocess]` item spent on earlier attempts.
pub(crate) fn wire_chunk<'a>(
    job: JobId,
    task: Task,
    reporting: Reporting,
    items: impl Iterator<Item = ItemView<'a>> + Clone,
) -> Chunk<'a> {
    Chunk {
        job,
        task: task_ref(task),
        reporting,
        items: items
            .clone()
            .map(|item| WireItem {
                index: item.index,
                bytes: item.bytes,
            })
            .collect(),
        lives_spent: lives_spent(items),
    }
}

fn task_ref(task: Task) -> TaskRef<'static> {
    match task {
        Task::Function { offset } => TaskRef::Function { offset },
        Task::Process { key } => TaskRef::Process { key },
    }
}

/// `(index, spent)` for each item that spent lives on earlier attempts.
fn lives_spent<'a>(items: impl Iterator<Item = ItemView<'a>>) -> Vec<(u64, u32)> {
    items
        .filter(|item| item.spent > 0)
        .map(|item| (item.index, item.spent))
        .collect()
}

/// [`ToWorker::Chunk`] as a process worker's writer writes it: the same bytes as encoding
/// [`wire_chunk`]'s chunk, its head and lives by the codec and its items as the caller
/// encoded them ([`ChunkItems::write_to`]), in one allocation.
fn encode_chunk(
    job: JobId,
    task: Task,
    reporting: Reporting,
    items: &ChunkItems<'_>,
) -> Result<Vec<u8>, frame::WireError> {
    let mut encoded = Vec::with_capacity(64 + items.wire_len());
    let head = ToWorkerHead::Chunk {
        _job: job,
        _task: task_ref(task),
        _reporting: reporting,
        items: items.len() as u64,
    };
    frame::append_into(&head, &mut encoded)?;
    items.write_to(&mut encoded);
    frame::append_into(&lives_spent(items.iter()), &mut encoded)?;
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::items::{Item, ItemBatch, Items};
    use crate::pool::shared_bytes::SharedBytes;
    use crate::protocol::pool::FunctionOffsets;

    #[test]
    fn a_chunk_is_written_as_the_wire_chunk_it_stands_for() {
        let mut batch = ItemBatch::default();
        for (index, bytes) in [
            (3, vec![1, 2]),
            (7, vec![9; 300]),
            (u64::MAX, vec![]),
            (4, vec![5]),
        ] {
            let written = batch.push(index, |buffer| {
                buffer.extend_from_slice(&bytes);
                Ok::<(), ()>(())
            });
            assert_eq!(written, Ok(&bytes[..]));
        }
        // A run of a batch, with an item of its own in front that spent lives.
        let mut items = Items::default();
        items.push_batch(12, batch.finish());
        items.push_front(12, Item::new(900, SharedBytes::from(vec![])).spent(2));
        let offset = FunctionOffsets {
            trampoline: -5,
            function: 70_000,
        };
        for task in [Task::Function { offset }, Task::Process { key: "a::Key" }] {
            // The whole, and parts that cut the run at either end.
            for (start, count, lives) in [
                (0, 5, vec![(900, 2)]),
                (2, 2, vec![]),
                (0, 2, vec![(900, 2)]),
            ] {
                let chunk = items.chunk(12, start, count).unwrap();
                assert_eq!(chunk.len(), count);
                let written = encode_chunk(12, task, Reporting::Each, &chunk).unwrap();
                let wire = wire_chunk(12, task, Reporting::Each, chunk.iter());
                assert_eq!(wire.items.len(), count);
                assert_eq!(wire.lives_spent, lives);
                assert_eq!(written, frame::encode(&ToWorker::Chunk(wire)).unwrap());
            }
        }
    }
}
