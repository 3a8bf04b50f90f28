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

use crate::pool::scheduler::{ChunkItems, Item, JobId, PIPELINE, Task};
use crate::protocol::pool::{Chunk, TaskRef, ToWorker, ToWorkerHead, WireItem, put_item};
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
    pub(crate) fn chunk(
        &self,
        job: JobId,
        task: Task,
        isolated: bool,
        items: ChunkItems<'_>,
    ) -> bool {
        encode_chunk(job, task, isolated, items.iter()).is_ok_and(|encoded| self.write(encoded))
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
pub(crate) fn wire_chunk<'a>(
    job: JobId,
    task: Task,
    isolated: bool,
    items: impl Iterator<Item = &'a Item> + Clone,
) -> Chunk<'a> {
    Chunk {
        job,
        task: task_ref(task),
        isolated,
        items: items
            .clone()
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
fn lives_spent<'a>(items: impl Iterator<Item = &'a Item>) -> Vec<(u64, u32)> {
    items
        .filter(|item| item.lives_spent() > 0)
        .map(|item| (item.index, item.lives_spent()))
        .collect()
}

/// [`ToWorker::Chunk`] as a process worker's writer writes it: the same bytes as encoding
/// [`wire_chunk`]'s chunk, its head and lives by the codec and its items by hand
/// ([`put_item`]), straight from the scheduler's items and in one allocation.
fn encode_chunk<'a>(
    job: JobId,
    task: Task,
    isolated: bool,
    items: impl Iterator<Item = &'a Item> + Clone,
) -> Result<Vec<u8>, frame::WireError> {
    let (count, bytes) = items.clone().fold((0, 0), |(count, bytes), item| {
        (count + 1, bytes + item.bytes.len())
    });
    let mut encoded = Vec::with_capacity(64 + bytes + 20 * count);
    let head = ToWorkerHead::Chunk {
        _job: job,
        _task: task_ref(task),
        _isolated: isolated,
        items: count as u64,
    };
    frame::append_into(&head, &mut encoded)?;
    for item in items.clone() {
        put_item(&mut encoded, item.index, &item.bytes);
    }
    frame::append_into(&lives_spent(items), &mut encoded)?;
    Ok(encoded)
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
            .map(|item| match item.index {
                900 => item.spent(2),
                _ => item,
            })
            .collect();
        let offset = FunctionOffsets {
            trampoline: -5,
            function: 70_000,
        };
        for task in [Task::Function { offset }, Task::Process { key: "a::Key" }] {
            let written = encode_chunk(12, task, true, items.iter()).unwrap();
            let chunk = wire_chunk(12, task, true, items.iter());
            assert_eq!(chunk.lives_spent, [(900, 2)]);
            let wire = frame::encode(&ToWorker::Chunk(chunk)).unwrap();
            assert_eq!(written, wire);
        }
    }
}
