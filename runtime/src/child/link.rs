//! The child's end of the connection: who reads it, the inbox it fills for `Ctx::listen`, and
//! the credits that bound the child's own `tell`s.
//!
//! Reading follows the reader role of [`transport::role`](crate::transport::role): a hook in
//! `listen` that finds the inbox empty takes the role and reads the connection itself, so the
//! parent's message wakes that hook alone; the reader thread drains the connection only while
//! no hook holds the role, so the parent never stalls and a stop or credit is never stuck.
//!
//! When the parent's end closes — the parent exited, was killed, or killed this child's handle
//! — whoever reads it ends the process, so a child never outlives its parent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::child::bootstrap::{self, Started};
use crate::child::watchdog::{EndChild, ReportOverrun};
use crate::deadline;
use crate::error::Error;
use crate::protocol::credits::{CreditReturn, Credits};
use crate::protocol::lifecycle::{ToChild, ToParent};
use crate::transport::Connection;
use crate::transport::frame::{self, Frame, FrameReader};
use crate::transport::role::{self, ReaderRole, read_timeout_for, spin_until_readable};

/// Longest the reader thread waits for the rest of a frame once it holds the role; a frame
/// cut there is finished at its next turn.
const FRAME_REST_WAIT: Duration = Duration::from_millis(1);
/// Longest the reader thread waits at a time while a hook holds the role.
const HELD_WAIT: Duration = Duration::from_millis(50);

/// The queue of the inbox and how many hooks are parked on it.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    parked: usize,
    /// Bumped each time the reader role is let go, so a hook that found it taken looks again.
    turns: u64,
}

/// Messages from the parent waiting to be read by a hook.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    arrived: Condvar,
}

impl Inbox {
    fn push(&self, message: Vec<u8>) {
        let mut queue = self.lock();
        queue.messages.push_back(message);
        let parked = queue.parked > 0;
        drop(queue);
        if parked {
            self.arrived.notify_one();
        }
    }

    /// Takes the oldest message, waiting until `deadline` (`None`: without limit) for one or
    /// for the reader role to be let go after `seen` turns. `Err` carries the turns seen
    /// when the role may be free to take; `Ok(None)` means the deadline passed.
    fn pop_or_turn(
        &self,
        deadline: Option<Instant>,
        seen: Option<u64>,
    ) -> Result<Option<Vec<u8>>, u64> {
        let mut queue = self.lock();
        loop {
            if let Some(message) = queue.messages.pop_front() {
                return Ok(Some(message));
            }
            if seen != Some(queue.turns) {
                return Err(queue.turns);
            }
            queue.parked += 1;
            let waited = deadline::wait(&self.arrived, queue, deadline);
            let passed = waited.is_err();
            queue = waited.unwrap_or_else(|queue| queue);
            queue.parked -= 1;
            if passed {
                return Ok(queue.messages.pop_front());
            }
        }
    }

    fn has_messages(&self) -> bool {
        !self.lock().messages.is_empty()
    }

    /// The reader role was let go: parked hooks look again.
    fn role_released(&self) {
        let mut queue = self.lock();
        queue.turns = queue.turns.wrapping_add(1);
        let parked = queue.parked > 0;
        drop(queue);
        if parked {
            self.arrived.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the holder of the reader role reads with.
struct Frames {
    reader: FrameReader,
    /// The read timeout last set on the connection.
    read_timeout: Option<Duration>,
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
    /// Who reads the connection: a listening hook, or else the reader thread.
    role: Arc<ReaderRole<Frames>>,
    /// Credits for the child's `tell`s: room in the parent's queue.
    pub(crate) outbox_credits: Arc<Credits>,
    /// Counts messages the hooks took from the inbox, to hand credits back to the parent.
    pub(crate) inbox_return: Arc<Mutex<CreditReturn>>,
    pub(crate) stop: Arc<AtomicBool>,
    /// How long a hook in `listen` polls before it sleeps ([`Config::listen_spin`]).
    ///
    /// [`Config::listen_spin`]: crate::Config::listen_spin
    listen_spin: Duration,
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
            role: Arc::new(ReaderRole::new(Frames {
                reader,
                read_timeout: None,
            })),
            outbox_credits: Arc::new(outbox_credits),
            inbox_return: Arc::new(Mutex::new(CreditReturn::new(started.config.inbox_capacity))),
            stop: Arc::new(AtomicBool::new(resume.stop)),
            listen_spin: started.config.listen_spin,
        };
        let reading = link.clone();
        std::thread::Builder::new()
            .name("skprocess-reader".into())
            .spawn(move || reading.read_in_background(&connection))?;
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
            role: Arc::new(ReaderRole::new(Frames {
                reader: FrameReader::new(0),
                read_timeout: None,
            })),
            outbox_credits: Arc::new(Credits::new(0)),
            inbox_return: Arc::new(Mutex::new(CreditReturn::new(1))),
            stop: Arc::new(AtomicBool::new(false)),
            listen_spin: Duration::ZERO,
        }
    }

    /// Sends a control message to the parent; without a parent, there is nobody to tell.
    pub(crate) fn send(&self, message: &ToParent<'_>) -> Result<(), Error> {
        match &self.connection {
            Some(connection) => Ok(connection.send(message)?),
            None => Ok(()),
        }
    }

    /// Takes the oldest message from the parent, waiting until `deadline` (`None`: without
    /// limit): reads the connection itself while nobody else does.
    pub(crate) fn next_message(&self, deadline: Option<Instant>) -> Option<Vec<u8>> {
        let connection = self.connection.as_ref()?;
        let mut seen = None;
        loop {
            match self.inbox.pop_or_turn(deadline, seen) {
                Ok(message) => return message,
                Err(turns) => seen = Some(turns),
            }
            let Some(mut frames) = self.role.try_take() else {
                continue;
            };
            // The previous holder may have queued a message after this hook looked: it did
            // so before letting go, so it shows now.
            if self.inbox.has_messages() {
                drop(frames);
                self.role.released();
                self.inbox.role_released();
                continue;
            }
            let read = self.read_frames(&mut frames, connection, deadline, true);
            drop(frames);
            self.role.released();
            self.inbox.role_released();
            if !read {
                // Timed out: whatever came meanwhile is in the inbox.
                return self.inbox.pop_or_turn(Some(Instant::now()), seen).ok()?;
            }
        }
    }

    /// The reader thread: drains the parent's messages while no hook reads them, for as long
    /// as the connection lasts, then ends the process: the parent is gone.
    fn read_in_background(self, connection: &Connection) {
        let mut held_in_a_row = 0u32;
        loop {
            // Whole frames may wait in the reader already (read with the start message).
            let turn = self.role.background_turn(
                connection.stream(),
                &mut held_in_a_row,
                HELD_WAIT,
                |frames| frames.reader.has_buffered_frame(),
                || self.inbox.role_released(),
            );
            let Some(mut frames) = turn.unwrap_or_else(|_| bootstrap::exit_parent_gone()) else {
                continue;
            };
            let rest_by = Instant::now().checked_add(FRAME_REST_WAIT);
            self.read_frames(&mut frames, connection, rest_by, false);
            drop(frames);
            self.inbox.role_released();
        }
    }

    /// Reads frames until `deadline`: a hook's turn (`until_told`) until a message is in the
    /// inbox, the reader thread's until no whole frame is left buffered. Returns `false` when
    /// the deadline passed first.
    fn read_frames(
        &self,
        frames: &mut Frames,
        connection: &Connection,
        deadline: Option<Instant>,
        until_told: bool,
    ) -> bool {
        let mut told = false;
        loop {
            if !frames.reader.has_buffered_frame() {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                // A zero timeout would mean none at all to the socket.
                if left.is_some_and(|t| t.is_zero()) {
                    return false;
                }
                let timeout = read_timeout_for(left);
                if frames.read_timeout != timeout {
                    if connection.stream().set_read_timeout(timeout).is_err() {
                        bootstrap::exit_parent_gone();
                    }
                    frames.read_timeout = timeout;
                }
                if until_told {
                    spin_until_readable(connection.stream(), self.listen_spin, deadline);
                }
            }
            match frames.reader.read_frame(&mut connection.stream()) {
                Ok(Some(frame)) => told |= self.take_frame(frame),
                Err(e) if e.is_timeout() && role::still_before(deadline) => continue,
                Err(e) if e.is_timeout() => return false,
                Ok(None) | Err(_) => bootstrap::exit_parent_gone(),
            }
            if !frames.reader.has_buffered_frame() && (told || !until_told) {
                return true;
            }
        }
    }

    /// Acts on one frame from the parent; returns whether it was a message for the inbox.
    fn take_frame(&self, frame: Frame<'_>) -> bool {
        match frame::decode::<ToChild<'_>>(frame.bytes()) {
            Ok(ToChild::Tell(payload)) => {
                // A parent that sends more than the credits it was given breaks the inbox's
                // bound: it cannot be trusted to supervise either.
                if self.lock_inbox_return().received(1).is_err() {
                    bootstrap::exit_parent_gone();
                }
                self.inbox.push(payload.to_vec());
                return true;
            }
            Ok(ToChild::Credit(credits)) => self.outbox_credits.grant(credits),
            Ok(ToChild::Stop) => self.stop.store(true, Ordering::SeqCst),
            Ok(ToChild::DiscardOutbox) => self.outbox_credits.make_unlimited(),
            Ok(ToChild::Samples(_)) => {}
            // A parent that sends garbage cannot be trusted to supervise: leave.
            Err(_) => bootstrap::exit_parent_gone(),
        }
        false
    }

    fn lock_inbox_return(&self) -> MutexGuard<'_, CreditReturn> {
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
