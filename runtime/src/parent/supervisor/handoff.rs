//! The state of a child connection's reader role, kept in the process's shared view: what its
//! holder reads with, and what readers hand to the driver (reports and the connection's end,
//! in reading order). A leaf of the supervisor, so the shared view can hold it while
//! [`reader`](super::reader) (taking the role, reading) and [`record`](super::record)
//! (what a frame means) use the view.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::parent::supervisor::machine::Report;
use crate::transport::Connection;
use crate::transport::frame::FrameReader;
use crate::transport::role;

/// A message payload: its bytes are `bytes[start..]`.
#[derive(Debug)]
pub(crate) struct Payload {
    pub(crate) bytes: Vec<u8>,
    pub(crate) start: usize,
}

impl Payload {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Why a connection stopped yielding frames.
pub(crate) enum Interruption {
    /// The connection ended (cleanly, mid-frame, or with an error).
    Ended,
    /// The child sent something that is not a valid message.
    Malformed(String),
    /// The read timed out: time to check the deadline.
    TimedOut,
}

/// What a frame meant for the supervisor, beyond what was recorded in the view.
pub(crate) enum Reported {
    Report(Report),
    Checkpoint { state: Vec<u8>, completed_runs: u64 },
    Finished(Vec<u8>),
}

/// What a reader hands to the driver: what the supervisor must hear, in reading order.
pub(crate) enum Handed {
    Report(Reported),
    Interrupted(Interruption),
}

/// What the holder of the role reads with.
pub(crate) struct Reading {
    pub(super) frames: FrameReader,
    /// The current child's connection; `None` once it ended, until a replacement is
    /// installed.
    pub(super) connection: Option<Arc<Connection>>,
    /// The read timeout last set on `connection`.
    pub(super) read_timeout: Option<Duration>,
    /// Payloads read but not yet in the outbox, queued together once the frames already
    /// buffered are read.
    pub(super) arrived: Vec<Payload>,
}

/// How a turn at the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Frames were read: payloads are in the outbox (a listener's turn) or nothing whole is
    /// buffered any more (the driver's).
    Read,
    /// The read timed out.
    TimedOut,
    /// The connection ended or broke the protocol; the driver was told.
    Ended,
}

/// The role, and what its holders hand to the driver.
pub(crate) struct ReaderRole {
    pub(super) role: role::ReaderRole<Reading>,
    handed: Mutex<VecDeque<Handed>>,
    has_handed: AtomicBool,
}

impl std::fmt::Debug for ReaderRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderRole").finish_non_exhaustive()
    }
}

impl ReaderRole {
    pub(crate) fn new(max_frame: u32) -> Self {
        Self {
            role: role::ReaderRole::new(Reading {
                frames: FrameReader::new(max_frame),
                connection: None,
                read_timeout: None,
                arrived: Vec::new(),
            }),
            handed: Mutex::default(),
            has_handed: AtomicBool::new(false),
        }
    }

    /// Whether someone holds the role right now.
    pub(crate) fn is_held(&self) -> bool {
        self.role.is_held()
    }

    /// Puts a new child's connection in place, with a fresh frame reader. Called only once
    /// the previous connection ended, so no holder is blocked in a read.
    pub(crate) fn install(&self, connection: Option<Arc<Connection>>, max_frame: u32) {
        let mut reading = self.role.take();
        reading.frames = FrameReader::new(max_frame);
        reading.connection = connection;
        reading.read_timeout = None;
        reading.arrived.clear();
    }

    pub(super) fn hand(&self, handed: Handed) {
        self.lock_handed().push_back(handed);
        self.has_handed.store(true, Ordering::Release);
        self.role.wake_background();
    }

    /// Takes what readers handed to the driver.
    pub(crate) fn take_handed(&self) -> VecDeque<Handed> {
        if !self.has_handed.load(Ordering::Acquire) {
            return VecDeque::new();
        }
        let mut handed = self.lock_handed();
        self.has_handed.store(false, Ordering::Release);
        std::mem::take(&mut *handed)
    }

    /// The driver waits while a listener holds the role: at most `timeout`, less when
    /// something is handed to it or (if `timeout` is long) the role is let go. Returns
    /// whether it ended early.
    pub(crate) fn wait_handed(&self, timeout: Duration) -> bool {
        self.role
            .wait_released(timeout, || self.has_handed.load(Ordering::Acquire))
    }

    fn lock_handed(&self) -> MutexGuard<'_, VecDeque<Handed>> {
        self.handed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
