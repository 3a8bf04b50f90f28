//! The reader role of a child's connection ([`transport::role`](crate::transport::role)): a
//! thread waiting in `Handle::listen` reads for itself, the driver is the background reader.
//!
//! Whoever holds the role reads frames: a listener that finds no message takes it and blocks
//! in the read, so the child's reply wakes that listener alone — one wake-up per direction,
//! as in a plain blocking ping-pong, instead of the driver's and then the listener's. The
//! driver waits for the connection to become readable without holding the role and takes it
//! only for the frames that are there, so while nobody listens it still drains everything
//! and a child never stalls. Every frame, whoever reads it, goes through
//! [`record::dispatch`](super::record::dispatch): payloads join the bounded outbox (spending
//! the child's credits), the view is updated in place, and what the supervisor must hear of a
//! control frame (a report, the end of the connection) is handed to the driver here, in
//! reading order, so control frames are never stuck behind a listener.
//!
//! A listener that finds the role taken waits on the view, which each release bumps
//! ([`ProcessShared::release_reader_role`]); the driver waits in the role for a handed
//! report or the role's release.

use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use crate::parent::shared::ProcessShared;
use crate::parent::supervisor::handoff::{Handed, Interruption, Reading, Turn};
use crate::parent::supervisor::record;
use crate::transport::Connection;
use crate::transport::frame::{self};
use crate::transport::role::{self, read_timeout_for, spin_until_readable};

/// The role, released through [`ProcessShared::release_reader_role`] when dropped, so
/// listeners waiting for it look again.
pub(crate) struct RoleGuard<'a> {
    shared: &'a ProcessShared,
    reading: Option<MutexGuard<'a, Reading>>,
}

impl<'a> RoleGuard<'a> {
    /// Takes the role of `shared`'s connection if nobody holds it.
    pub(crate) fn try_take(shared: &'a ProcessShared) -> Option<Self> {
        let reading = shared.reading.role.try_take()?;
        Some(Self {
            shared,
            reading: Some(reading),
        })
    }
}

impl Deref for RoleGuard<'_> {
    type Target = Reading;

    fn deref(&self) -> &Reading {
        // Present until drop.
        self.reading.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for RoleGuard<'_> {
    fn deref_mut(&mut self) -> &mut Reading {
        self.reading
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!())
    }
}

impl Drop for RoleGuard<'_> {
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            drop(reading);
            self.shared.reading.role.released();
            self.shared.release_reader_role();
        }
    }
}

impl Reading {
    fn set_read_timeout(&mut self, connection: &Connection, timeout: Option<Duration>) -> bool {
        if self.read_timeout == timeout {
            return true;
        }
        let set = connection.stream().set_read_timeout(timeout).is_ok();
        self.read_timeout = timeout;
        set
    }

    /// Reads frames and records them in `shared` until `deadline` (`None`: no limit). A
    /// listener (`until_payload`) reads until a payload is in the outbox; the driver until no
    /// whole frame is left buffered.
    pub(crate) fn read(
        &mut self,
        shared: &ProcessShared,
        deadline: Option<Instant>,
        until_payload: bool,
    ) -> Turn {
        // Only a listener spins: it is the one waiting for an answer.
        let spin = match until_payload {
            true => shared.config.listen_spin,
            false => Duration::ZERO,
        };
        let Some(connection) = self.connection.clone() else {
            return Turn::Ended;
        };
        // Whether a payload was read in this turn: a control frame read after it queues it
        // before recording itself, so `arrived` alone does not tell.
        let mut got_payload = false;
        loop {
            if !self.frames.has_buffered_frame() {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                // A zero timeout would mean none at all to the socket.
                if left.is_some_and(|t| t.is_zero()) {
                    return Turn::TimedOut;
                }
                if !self.set_read_timeout(&connection, read_timeout_for(left)) {
                    return self.end(shared, Interruption::Ended);
                }
                spin_until_readable(connection.stream(), spin, deadline);
            }
            let (frames, arrived) = (&mut self.frames, &mut self.arrived);
            let before = arrived.len();
            let ended = match frames.read_frame(&mut connection.stream()) {
                Ok(Some(frame)) => match record::dispatch(shared, frame, arrived) {
                    Ok(Some(report)) => {
                        shared.reading.hand(Handed::Report(report));
                        None
                    }
                    Ok(None) => None,
                    Err(detail) => Some(Interruption::Malformed(detail)),
                },
                Ok(None) => Some(Interruption::Ended),
                Err(e) if e.is_timeout() && role::still_before(deadline) => continue,
                Err(e) if e.is_timeout() => return Turn::TimedOut,
                Err(frame::WireError::TooLarge { len, max }) => Some(Interruption::Malformed(
                    format!("a frame of {len} bytes, over the limit of {max}"),
                )),
                Err(_) => Some(Interruption::Ended),
            };
            if let Some(why) = ended {
                return self.end(shared, why);
            }
            got_payload |= self.arrived.len() > before;
            if !self.frames.has_buffered_frame() {
                if let Err(overspent) = record::queue_messages(shared, &mut self.arrived) {
                    return self.end(shared, Interruption::Malformed(overspent));
                }
                shared.flush_deferred();
                if got_payload || !until_payload {
                    return Turn::Read;
                }
            }
        }
    }

    /// The connection is over for this role: the driver hears why, nobody reads it again.
    fn end(&mut self, shared: &ProcessShared, why: Interruption) -> Turn {
        // The payloads before the end are delivered; past the credits, the child is already
        // being ended for a protocol violation.
        let why = match record::queue_messages(shared, &mut self.arrived) {
            Ok(()) => why,
            Err(overspent) => Interruption::Malformed(overspent),
        };
        self.connection = None;
        shared.reading.hand(Handed::Interrupted(why));
        Turn::Ended
    }
}

/// A listener's turn: reads until a payload is in the outbox, the connection ends or
/// `deadline` passes. Returns `None` when another thread holds the role (it bumps the view's
/// reader turns when it lets go) or no connection is current (installing one bumps them).
pub(crate) fn listener_turn(shared: &ProcessShared, deadline: Option<Instant>) -> Option<Turn> {
    let mut role = RoleGuard::try_take(shared)?;
    if role.connection.is_none() {
        // Let go without a bump (nothing changed that a listener could use): the guard's
        // drop finds the role already let go.
        drop(role.reading.take());
        return None;
    }
    // The previous holder may have queued a message after this listener looked: it did so
    // before letting go, so it shows now.
    if !shared.view().outbox.is_empty() {
        return Some(Turn::Read);
    }
    Some(role.read(shared, deadline, true))
}
