//! The owner's side, shared by the queue's handle and the threads that serve worker
//! connections: the state machine and the live worker process, each behind its own lock.
//!
//! Lock order: `worker` before `machine`. The `machine` lock is held only for bookkeeping
//! (never across I/O), so a worker asking for its next item never waits for a spawn.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::process_queue::{Finished, ToQueue, ToWorker};
use crate::transport::frame;
use crate::transport::server::{Flow, Peer, Session};
use crate::worker::Worker;

use super::machine::{Appended, Machine, Next};

/// The worker process the queue started last, and its generation.
pub(crate) struct Running {
    pub(crate) generation: u64,
    pub(crate) process: Worker<()>,
}

/// What the handle and the worker sessions share.
pub(crate) struct Owner {
    machine: Mutex<Machine>,
    worker: Mutex<Option<Running>>,
}

impl Owner {
    pub(crate) fn new(capacity: usize, attempts: u32) -> Self {
        Self {
            machine: Mutex::new(Machine::new(capacity, attempts)),
            worker: Mutex::new(None),
        }
    }

    pub(crate) fn machine(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The worker slot, after forgetting a worker that is retired or whose process died
    /// (its item is requeued then): what remains is the live worker, if any.
    pub(crate) fn worker(&self) -> MutexGuard<'_, Option<Running>> {
        let mut slot = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_ended(&mut slot);
        slot
    }

    fn forget_ended(&self, slot: &mut Option<Running>) {
        let Some(running) = slot.as_mut() else {
            return;
        };
        let dead = !running.process.is_alive();
        if dead {
            report_end(running);
        }
        let mut machine = self.machine();
        if dead {
            machine.ended(running.generation);
        }
        if machine.worker() != Some(running.generation) {
            // Dropping the handle kills (a retired worker is exiting anyway) and reaps it.
            drop(machine);
            *slot = None;
        }
    }

    /// Appends under the worker lock the caller holds.
    pub(crate) fn append(&self, items: Vec<Arc<[u8]>>) -> Result<Appended, Error> {
        self.machine()
            .append(items)
            .map_err(|full| Error::ProcessQueueFull {
                capacity: full.capacity,
                len: full.len,
                adding: full.adding,
            })
    }

    /// Answers one request; false when the connection failed.
    fn answer(&self, peer: &Peer, generation: u64, finished: Option<Finished>) -> bool {
        if let Some(panic) = finished.as_ref().and_then(|f| f.panic.as_deref()) {
            tracing::warn!("a process queue handler panicked (the item is done): {panic}");
        }
        let next = self.machine().next(generation, finished.map(|f| f.id));
        let sent = match &next {
            Next::Item(entry) => peer.send(&ToWorker::Item {
                id: entry.id,
                item: &entry.bytes,
            }),
            Next::Retire => peer.send(&ToWorker::Retire),
        };
        sent.is_ok()
    }

    /// A worker's connection ended: if it was the current worker, it is gone (its item is
    /// requeued) and its process is killed and reaped.
    fn connection_ended(&self, generation: u64) {
        let mut slot = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        self.machine().ended(generation);
        if slot.as_ref().is_some_and(|r| r.generation == generation) {
            *slot = None;
        }
    }
}

/// Logs how a worker that died without being retired ended (a crash, a kill from outside, a
/// start that failed), so a worker that can never start is not silent.
fn report_end(running: &mut Running) {
    if let Err(error) = running.process.join_timeout(Duration::ZERO) {
        tracing::warn!(
            "a process queue worker ended before the queue was empty ({error}); the next \
             `start` starts another"
        );
    }
}

/// One worker connection, served on the server's reader thread for it: each request is the
/// worker asking for its next item (reporting the last one done).
pub(crate) struct WorkerSession {
    owner: Arc<Owner>,
    /// The worker's generation, once it asked.
    generation: Option<u64>,
}

impl WorkerSession {
    pub(crate) fn new(owner: Arc<Owner>) -> Self {
        Self {
            owner,
            generation: None,
        }
    }
}

impl Session for WorkerSession {
    fn on_frame(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        let Ok(ToQueue::Next {
            generation,
            finished,
        }) = frame::decode::<ToQueue>(frame)
        else {
            return Flow::Close;
        };
        self.generation = Some(generation);
        if self.owner.answer(peer, generation, finished) {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    fn on_end(&mut self, _peer: &Peer) {
        if let Some(generation) = self.generation {
            self.owner.connection_ended(generation);
        }
    }
}
