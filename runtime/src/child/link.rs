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
use crate::child::watchdog::{EndChild, ReportOverrun};
use crate::deadline;
use crate::error::Error;
use crate::protocol::credits::{CreditReturn, Credits};
use crate::protocol::lifecycle::{ToChild, ToParent};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};

/// How long `listen` spins before parking, on machines with cores to spare: a reply usually
/// arrives within microseconds, and waking a parked thread costs more than that. With fewer
/// than [`SPIN_MIN_CORES`] cores a spinning hook takes the core the reader needs, so it parks
/// at once (measured: spinning made the round trip slower on two cores).
const LISTEN_SPIN: Duration = Duration::from_micros(50);
/// Fewest cores on which `listen` spins.
const SPIN_MIN_CORES: usize = 4;
/// Spin iterations between two looks at the clock.
const SPIN_CLOCK_EVERY: u32 = 64;

/// The queue of the inbox and how many hooks are parked on it.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    parked: usize,
}

/// Messages from the parent waiting to be read by a hook.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    queued: AtomicUsize,
    arrived: Condvar,
}

impl Inbox {
    fn push(&self, message: Vec<u8>) {
        let mut queue = self.lock();
        queue.messages.push_back(message);
        self.queued.store(queue.messages.len(), Ordering::Release);
        let parked = queue.parked > 0;
        drop(queue);
        if parked {
            self.arrived.notify_one();
        }
    }

    /// Takes the oldest message, waiting until `deadline` (`None`: without limit).
    pub(crate) fn pop(&self, deadline: Option<Instant>) -> Option<Vec<u8>> {
        if spare_cores() {
            self.spin(deadline);
        }
        let mut queue = self.lock();
        loop {
            if let Some(message) = queue.messages.pop_front() {
                self.queued.store(queue.messages.len(), Ordering::Release);
                return Some(message);
            }
            queue.parked += 1;
            let waited = deadline::wait(&self.arrived, queue, deadline);
            let passed = waited.is_err();
            queue = waited.unwrap_or_else(|queue| queue);
            queue.parked -= 1;
            if passed {
                return None;
            }
        }
    }

    /// Spins until a message is queued, [`LISTEN_SPIN`] passed or `deadline` came.
    fn spin(&self, deadline: Option<Instant>) {
        let spin_end = Instant::now().checked_add(LISTEN_SPIN);
        let until = match (spin_end, deadline) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or_else(Instant::now),
        };
        let mut spins = 0u32;
        while self.queued.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % SPIN_CLOCK_EVERY == 0 && Instant::now() >= until {
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether this machine has cores to spare for spinning.
fn spare_cores() -> bool {
    static SPARE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPARE.get_or_init(|| {
        std::thread::available_parallelism().is_ok_and(|n| n.get() >= SPIN_MIN_CORES)
    })
}

/// The child's side of the connection, shared by the engine, the hooks and the reader.
#[derive(Clone)]
pub(crate) struct ChildLink {
    /// The connection to the parent; `None` for a process that runs as a pool item, which has
    /// no parent to tell, listen to or report progress to.
    pub(crate) connection: Option<Arc<Connection>>,
    /// Where a hook's overrun is reported.
    pub(crate) overrun: Arc<dyn ReportOverrun>,
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
        let connection = Arc::new(connection);
        let link = Self {
            overrun: Arc::new(EndChild(Arc::clone(&connection))),
            connection: Some(Arc::clone(&connection)),
            inbox: Arc::default(),
            outbox_credits: Arc::new(outbox_credits),
            inbox_return: Arc::new(Mutex::new(CreditReturn::new(started.config.inbox_capacity))),
            stop: Arc::new(AtomicBool::new(resume.stop)),
        };
        let reading = link.clone();
        std::thread::Builder::new()
            .name("skprocess-reader".into())
            .spawn(move || reading.read(&connection, reader))?;
        Ok(link)
    }

    /// A link without a parent, for a process that runs as a pool item: lifecycle reports go
    /// nowhere, `tell` and `listen` fail with [`Error::NoParentLink`](crate::Error), and
    /// overruns go to `overrun`.
    pub(crate) fn detached(overrun: Arc<dyn ReportOverrun>) -> Self {
        Self {
            connection: None,
            overrun,
            inbox: Arc::default(),
            outbox_credits: Arc::new(Credits::new(0)),
            inbox_return: Arc::new(Mutex::new(CreditReturn::new(1))),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sends a control message to the parent; without a parent, there is nobody to tell.
    pub(crate) fn send(&self, message: &ToParent<'_>) -> Result<(), Error> {
        match &self.connection {
            Some(connection) => Ok(connection.send(message)?),
            None => Ok(()),
        }
    }

    /// Drains the parent's messages for as long as the connection lasts, then ends the
    /// process: the parent is gone.
    fn read(self, connection: &Connection, mut reader: FrameReader) {
        loop {
            let frame = match reader.read_frame(&mut connection.stream()) {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => bootstrap::exit_parent_gone(),
            };
            match frame::decode::<ToChild<'_>>(frame.bytes()) {
                Ok(ToChild::Tell(payload)) => {
                    // A parent that sends more than the credits it was given breaks the
                    // inbox's bound: it cannot be trusted to supervise either.
                    if self.lock_inbox_return().received(1).is_err() {
                        bootstrap::exit_parent_gone();
                    }
                    self.inbox.push(payload.to_vec());
                }
                Ok(ToChild::Credit(credits)) => self.outbox_credits.grant(credits),
                Ok(ToChild::Stop) => self.stop.store(true, Ordering::SeqCst),
                Ok(ToChild::DiscardOutbox) => self.outbox_credits.make_unlimited(),
                Ok(ToChild::Samples(_)) => {}
                // A parent that sends garbage cannot be trusted to supervise: leave.
                Err(_) => bootstrap::exit_parent_gone(),
            }
        }
    }

    fn lock_inbox_return(&self) -> std::sync::MutexGuard<'_, CreditReturn> {
        self.inbox_return
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a message a hook took; hands credits back to the parent in batches.
    pub(crate) fn took_message(&self) {
        let credits = self.lock_inbox_return().took_one();
        if let Some(credits) = credits {
            // The parent being gone ends this process through the reader.
            let _ = self.send(&ToParent::Credit(credits));
        }
    }
}
