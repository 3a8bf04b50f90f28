//! The child's end of the connection: the one reader thread that drains it, the inbox it fills
//! for `Ctx::listen`, and the credits that bound the child's own `tell`s.
//!
//! When the parent's end closes — the parent exited, was killed, or killed this child's handle
//! — the reader ends the process, so a child never outlives its parent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::child::bootstrap::{self, Started};
use crate::protocol::credits::{CreditReturn, Credits};
use crate::protocol::lifecycle::{ToChild, ToParent};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};

/// How long `listen` spins before parking: a reply usually arrives within microseconds, and
/// waking a parked thread costs more than that.
const LISTEN_SPIN: Duration = Duration::from_micros(50);

/// Messages from the parent waiting to be read by a hook.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<VecDeque<Vec<u8>>>,
    queued: AtomicUsize,
    arrived: Condvar,
}

impl Inbox {
    fn push(&self, message: Vec<u8>) {
        let mut queue = self.lock();
        queue.push_back(message);
        self.queued.store(queue.len(), Ordering::Release);
        drop(queue);
        self.arrived.notify_one();
    }

    /// Takes the oldest message, waiting until `deadline` (`None`: without limit).
    pub(crate) fn pop(&self, deadline: Option<Instant>) -> Option<Vec<u8>> {
        let spin_until = Instant::now().checked_add(LISTEN_SPIN);
        while self.queued.load(Ordering::Acquire) == 0
            && spin_until.is_some_and(|s| Instant::now() < s)
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            std::hint::spin_loop();
        }
        let mut queue = self.lock();
        loop {
            if let Some(message) = queue.pop_front() {
                self.queued.store(queue.len(), Ordering::Release);
                return Some(message);
            }
            queue = match deadline {
                None => self
                    .arrived
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let waited = self.arrived.wait_timeout(queue, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The child's side of the connection, shared by the engine, the hooks and the reader.
#[derive(Clone)]
pub(crate) struct ChildLink {
    pub(crate) connection: Arc<Connection>,
    pub(crate) inbox: Arc<Inbox>,
    /// Credits for the child's `tell`s: room in the parent's queue.
    pub(crate) outbox_credits: Arc<Credits>,
    /// Counts messages the hooks took from the inbox, to hand credits back to the parent.
    pub(crate) inbox_return: Arc<Mutex<CreditReturn>>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl ChildLink {
    /// Wraps the connection and starts its reader.
    pub(crate) fn start(
        connection: Connection,
        reader: FrameReader,
        started: &Started,
    ) -> std::io::Result<Self> {
        let resume = &started.resume;
        let outbox_credits = Credits::new(resume.outbox_credits);
        if resume.discard_outbox {
            outbox_credits.make_unlimited();
        }
        let link = Self {
            connection: Arc::new(connection),
            inbox: Arc::default(),
            outbox_credits: Arc::new(outbox_credits),
            inbox_return: Arc::new(Mutex::new(CreditReturn::new(started.config.inbox_capacity))),
            stop: Arc::new(AtomicBool::new(resume.stop)),
        };
        let reading = link.clone();
        std::thread::Builder::new()
            .name("skprocess-reader".into())
            .spawn(move || reading.read(reader))?;
        Ok(link)
    }

    /// Drains the parent's messages for as long as the connection lasts, then ends the
    /// process: the parent is gone.
    fn read(self, mut reader: FrameReader) {
        loop {
            let frame = match reader.read_frame(&mut self.connection.stream()) {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => bootstrap::exit_parent_gone(),
            };
            match frame::decode::<ToChild<'_>>(frame.bytes()) {
                Ok(ToChild::Tell(payload)) => self.inbox.push(payload.to_vec()),
                Ok(ToChild::Credit(credits)) => self.outbox_credits.grant(credits),
                Ok(ToChild::Stop) => self.stop.store(true, Ordering::SeqCst),
                Ok(ToChild::DiscardOutbox) => self.outbox_credits.make_unlimited(),
                Ok(ToChild::Samples(_)) => {}
                // A parent that sends garbage cannot be trusted to supervise: leave.
                Err(_) => bootstrap::exit_parent_gone(),
            }
        }
    }

    /// Counts a message a hook took; hands credits back to the parent in batches.
    pub(crate) fn took_message(&self) {
        let credits = self
            .inbox_return
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .took_one();
        if let Some(credits) = credits {
            // The parent being gone ends this process through the reader.
            let _ = self.connection.send(&ToParent::Credit(credits));
        }
    }
}
