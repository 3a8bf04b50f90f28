//! The one thread per worker process that writes its chunks, so the dispatcher never blocks
//! on a worker that does not read (stopped by a signal, a debugger or a frozen cgroup): it
//! encodes a chunk and hands it over, and only this worker's writer waits.
//!
//! The scheduler keeps at most [`PIPELINE`] chunks in flight per worker, and sends a worker no
//! chunk while a release (which travels the same way, behind them) waits for its answer, so
//! the hand-over queue is bounded by construction; a queue that is full anyway, or a writer that stopped
//! because a write failed, is reported to the caller, which ends the worker.

use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};

use serde::{Serialize, Serializer};

use crate::pool::scheduler::{Item, JobId, PIPELINE, Task};
use crate::protocol::pool::{Chunk, TaskRef, ToWorker, WireItem};
use crate::transport::Connection;
use crate::transport::frame;

/// The dispatcher's side of a worker's writer thread.
pub(crate) struct ChunkWriter {
    frames: SyncSender<Vec<u8>>,
}

impl ChunkWriter {
    /// Starts the writer of `connection`, which calls `on_failure` (ending the worker) when a
    /// write fails; `None` if the OS gives no thread.
    pub(crate) fn start(
        connection: Arc<Connection>,
        on_failure: impl FnOnce() + Send + 'static,
    ) -> Option<Self> {
        // Room for every chunk the scheduler may have in flight, and one more.
        let (frames, queued) = mpsc::sync_channel::<Vec<u8>>(PIPELINE + 1);
        std::thread::Builder::new()
            .name("skprocess-pool-writer".to_owned())
            .spawn(move || {
                for frame in queued {
                    if connection.send_with_payload(&[], &frame).is_err() {
                        // The worker is dying or broke the protocol (or the chunk outgrew a
                        // frame): end it now, so its end settles its items.
                        on_failure();
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self { frames })
    }

    /// Queues one chunk without waiting; `false` when it cannot be encoded or the worker
    /// cannot take it (its queue is full, or a write failed).
    pub(crate) fn chunk(&self, job: JobId, task: Task, isolated: bool, items: &[Item]) -> bool {
        let chunk = ChunkFrame::Chunk {
            job,
            task: task_ref(task),
            isolated,
            items: ChunkItems(items),
            lives_spent: lives_spent(items),
        };
        // Room for the head and, per item, its index and length varints and its bytes: one
        // allocation, where growing as it goes copied the frame over and over.
        let bytes: usize = items.iter().map(|item| item.bytes.len()).sum();
        let mut encoded = Vec::with_capacity(64 + bytes + 16 * items.len());
        frame::encode_into(&chunk, &mut encoded).is_ok() && self.write(encoded)
    }

    /// Queues a release behind the chunks sent before it; `false` as for [`chunk`](Self::chunk).
    pub(crate) fn release(&self) -> bool {
        frame::encode(&ToWorker::Release).is_ok_and(|encoded| self.write(encoded))
    }

    fn write(&self, frame: Vec<u8>) -> bool {
        self.frames.try_send(frame).is_ok()
    }
}

/// A chunk as it travels (or as a worker thread reads it): the items borrowed, and the lives
/// each `#[skprocess]` item spent on earlier attempts.
pub(crate) fn wire_chunk(job: JobId, task: Task, isolated: bool, items: &[Item]) -> Chunk<'_> {
    Chunk {
        job,
        task: task_ref(task),
        isolated,
        items: items
            .iter()
            .map(|item| WireItem {
                index: item.index,
                bytes: &item.bytes,
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
fn lives_spent(items: &[Item]) -> Vec<(u64, u32)> {
    items
        .iter()
        .filter(|item| item.lives_spent() > 0)
        .map(|item| (item.index, item.lives_spent()))
        .collect()
}

/// [`ToWorker::Chunk`] as a process worker's writer writes it: the same variant and fields in
/// the same order, so the same bytes, with the items serialized straight from the scheduler's
/// rather than collected into a [`Chunk`] first.
#[derive(Serialize)]
enum ChunkFrame<'a> {
    Chunk {
        job: JobId,
        task: TaskRef<'a>,
        isolated: bool,
        items: ChunkItems<'a>,
        lives_spent: Vec<(u64, u32)>,
    },
}

/// A chunk's items as the wire's sequence of [`WireItem`]s.
struct ChunkItems<'a>(&'a [Item]);

impl Serialize for ChunkItems<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|item| WireItem {
            index: item.index,
            bytes: &item.bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::shared_bytes::SharedBytes;
    use crate::protocol::pool::FunctionOffsets;

    #[test]
    fn a_chunk_is_written_as_the_wire_chunk_it_stands_for() {
        let items: Vec<Item> = [(3, vec![1, 2]), (900, vec![]), (7, vec![9; 300])]
            .into_iter()
            .map(|(index, bytes)| Item::new(index, SharedBytes::from(bytes)))
            .collect();
        let offset = FunctionOffsets {
            trampoline: -5,
            function: 70_000,
        };
        let written = frame::encode(&ChunkFrame::Chunk {
            job: 12,
            task: TaskRef::Function { offset },
            isolated: true,
            items: ChunkItems(&items),
            lives_spent: vec![(900, 2)],
        })
        .unwrap();
        let mut chunk = wire_chunk(12, Task::Function { offset }, true, &items);
        chunk.lives_spent = vec![(900, 2)];
        let wire = frame::encode(&ToWorker::Chunk(chunk)).unwrap();
        assert_eq!(written, wire);
    }
}
