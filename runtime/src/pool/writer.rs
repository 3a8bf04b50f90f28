//! The one thread per worker process that writes its chunks, so the dispatcher never blocks
//! on a worker that does not read (stopped by a signal, a debugger or a frozen cgroup): it
//! encodes a chunk and hands it over, and only this worker's writer waits.
//!
//! The scheduler keeps at most [`PIPELINE`] chunks in flight per worker, so the hand-over
//! queue is bounded by construction; a worker whose queue is full anyway broke that bound and
//! is killed, and its end settles its items.

use std::process::Child;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::pool::launch::kill;
use crate::pool::scheduler::PIPELINE;
use crate::transport::Connection;

/// The dispatcher's side of a worker's writer thread.
pub(crate) struct ChunkWriter {
    frames: SyncSender<Vec<u8>>,
    child: Arc<Mutex<Option<Child>>>,
}

impl ChunkWriter {
    /// Starts the writer of `connection`; `None` if the OS gives no thread.
    pub(crate) fn start(
        connection: Arc<Connection>,
        child: Arc<Mutex<Option<Child>>>,
    ) -> Option<Self> {
        // Room for every chunk the scheduler may have in flight, and one more.
        let (frames, queued) = mpsc::sync_channel::<Vec<u8>>(PIPELINE + 1);
        let writer_child = Arc::clone(&child);
        std::thread::Builder::new()
            .name("skprocess-pool-writer".to_owned())
            .spawn(move || {
                for frame in queued {
                    if connection.send_with_payload(&[], &frame).is_err() {
                        // A worker that cannot take a chunk is dying or broke the protocol.
                        kill(&writer_child);
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self { frames, child })
    }

    /// Queues one encoded chunk without waiting.
    pub(crate) fn write(&self, frame: Vec<u8>) {
        match self.frames.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => kill(&self.child),
        }
    }
}
