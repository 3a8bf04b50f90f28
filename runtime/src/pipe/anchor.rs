//! The anchor: the pipe end that stays in the process that created the pipe. It owns the
//! server its point connects to, and admits one point at a time: the server runs each
//! handshake on its reader thread for that connection (at most [`MAX_HANDSHAKES`] at once,
//! each dropped if its point hello does not come within the handshake timeout), and an
//! admitted connection is detached from the server and read on the anchor's callers' threads.

use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::pipe::link::{Link, Sent};
use crate::pipe::point::{Point, PointRecipe};
use crate::pipe::slot::{Admission, Arrival, Peer};

use crate::message::Message;
use crate::pipe::{Ends, HANDSHAKE_TIMEOUT, PipeConfig, PipeError, TrySendError, type_hash};
use crate::protocol::pipe::{AnchorReply, PointHello};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::rendezvous::random_hex;
use crate::transport::server::{Flow, Peer as ServerPeer, Server, ServerConfig, Session};

/// The end of a pipe that stays in the process that created it: it sends `S` and receives `R`
/// (for a one-way pipe, `R` is [`OneWay`](super::OneWay) and it only sends).
///
/// Calls wait for the point to connect the first time, up to
/// [`PipeConfig::accept_timeout`]. When the point's process ends or closes its end, the next
/// call fails with [`PipeError::Closed`] (never a hang); if that process is restarted after a
/// crash, its point connects again and calls work again (see
/// [`wait_connected`](Anchor::wait_connected)). Dropping the anchor closes the pipe.
///
/// An anchor cannot be serialized: putting one in a process's state does not compile (see
/// [`CanLeaveItsProcess`]).
pub struct Anchor<S, R> {
    peer: Arc<PeerSlot>,
    server: Mutex<Option<Server>>,
    accept_timeout: Duration,
    _types: PhantomData<fn(S) -> R>,
}

/// The peer, shared with the accept thread, and a condition that changes of it signal.
#[derive(Debug)]
struct PeerSlot {
    peer: Mutex<Peer<Link>>,
    changed: Condvar,
}

/// Implemented by nothing: a pipe [`Anchor`] cannot leave the process that created the pipe.
///
/// `Anchor` implements `Serialize` and `Deserialize` only where this bound holds, which is
/// never, so a process state (or a message) that contains an anchor is a compile error that
/// names this trait: "the trait `CanLeaveItsProcess` is not implemented for `Anchor<…>`".
/// Move the [`Point`] into the child instead.
#[diagnostic::on_unimplemented(
    message = "a pipe `Anchor` cannot be sent to another process",
    label = "the anchor stays in the process that created the pipe",
    note = "move the `Point` (the second value of `Pipe::pair`) into the child instead, and keep the anchor here"
)]
pub trait CanLeaveItsProcess {}

impl<S, R> Serialize for Anchor<S, R>
where
    Anchor<S, R>: CanLeaveItsProcess,
{
    fn serialize<Z: Serializer>(&self, _: Z) -> Result<Z::Ok, Z::Error> {
        Err(serde::ser::Error::custom(
            "a pipe anchor cannot be serialized: it stays in the process that created the pipe",
        ))
    }
}

impl<'de, S, R> Deserialize<'de> for Anchor<S, R>
where
    Anchor<S, R>: CanLeaveItsProcess,
{
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a pipe anchor cannot be deserialized: it stays in the process that created the pipe",
        ))
    }
}

impl<S, R> std::fmt::Debug for Anchor<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchor")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Most handshakes an anchor runs at once; a point past them is refused and may retry.
const MAX_HANDSHAKES: usize = 16;

/// Starts the anchor's server and returns both ends.
pub(super) fn create<S, R>(config: PipeConfig) -> Result<Ends<S, R>, PipeError> {
    let nonce = u64::from_str_radix(&random_hex(8).map_err(|e| to_io(e.into()))?, 16)
        .map_err(|e| PipeError::Io(std::io::Error::other(e)))?;
    let expected_types = type_hash::<S, R>();
    let peer = Arc::new(PeerSlot {
        peer: Mutex::new(Peer::Waiting),
        changed: Condvar::new(),
    });
    let max_frame = config.max_message_bytes;
    let mut server = ServerConfig::new("skprocess-pipe", max_frame);
    server.socket_dir = config.socket_dir.clone();
    server.max_connections = MAX_HANDSHAKES;
    server.first_frame_timeout = Some(HANDSHAKE_TIMEOUT);
    server.write_timeout = HANDSHAKE_TIMEOUT;
    let server = Server::start(server, {
        let slot = Arc::clone(&peer);
        move |point: &ServerPeer| {
            // The point proves the nonce once it has seen this.
            point.send(&AnchorReply::Ready).ok()?;
            Some(Handshake {
                slot: Arc::clone(&slot),
                nonce,
                expected_types,
            })
        }
    })
    .map_err(|e| to_io(e.into()))?;
    let recipe = PointRecipe {
        endpoint: server.endpoint().clone(),
        nonce,
        type_hash: expected_types,
        max_frame,
    };
    let anchor = Anchor {
        peer,
        server: Mutex::new(Some(server)),
        accept_timeout: config.accept_timeout,
        _types: PhantomData,
    };
    Ok((anchor, Point::from_recipe(recipe)))
}

/// One point's handshake, on the server's reader thread for its connection: the point's
/// hello decides, and the connection leaves the server either way.
struct Handshake {
    slot: Arc<PeerSlot>,
    nonce: u64,
    expected_types: u64,
}

impl Session for Handshake {
    fn on_frame(&mut self, point: &ServerPeer, frame: &[u8]) -> Flow {
        let Ok(hello) = frame::decode::<PointHello>(frame) else {
            return Flow::Close;
        };
        let slot = Arc::clone(&self.slot);
        let connection = Arc::clone(point.connection());
        // Only for telling a second user who holds the point; 0 where the OS does not say.
        let pid = point.pid().unwrap_or(0);
        let arrival = (
            hello.nonce == self.nonce,
            hello.type_hash == self.expected_types,
        );
        Flow::Detach(Box::new(move |frames| {
            slot.handshake(connection, frames, pid, arrival);
        }))
    }
}

fn to_io(error: crate::error::Error) -> PipeError {
    match error {
        crate::error::Error::Io(e) => PipeError::Io(e),
        other => PipeError::Io(std::io::Error::other(other.to_string())),
    }
}

impl PeerSlot {
    fn lock(&self) -> MutexGuard<'_, Peer<Link>> {
        self.peer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides on a point whose hello arrived (`arrival`: whether its nonce and its types
    /// match), answers, and on success makes the connection the peer.
    fn handshake(
        &self,
        connection: Arc<Connection>,
        frames: FrameReader,
        pid: u32,
        (nonce_matches, types_match): (bool, bool),
    ) {
        let deadline = Instant::now().checked_add(HANDSHAKE_TIMEOUT);
        let mut peer = self.lock();
        let current_peer_hung_up = match &*peer {
            Peer::Connected(link) => link.peer_hung_up(),
            _ => false,
        };
        let arrival = Arrival {
            nonce_matches,
            types_match,
            current_peer_hung_up,
        };
        match peer.admit(arrival, Link::peer_pid) {
            Admission::Accept => {
                let reply = AnchorReply::Accepted {
                    pid: std::process::id(),
                };
                if !matches!(connection.send_before(&reply, deadline), Ok(true)) {
                    return;
                }
                if let Peer::Connected(old) = &*peer {
                    old.shutdown();
                }
                // The server read the handshake; the pipe's stream of messages keeps its room.
                let frames = frames.keep_large();
                *peer = Peer::Connected(Arc::new(Link::new(connection, frames, pid)));
                self.changed.notify_all();
            }
            Admission::Refuse(refusal) => {
                let _ = connection.send_before(&AnchorReply::Refused(refusal), deadline);
            }
        }
    }

    /// The connected end, waiting for a first connection until `deadline` (or while the
    /// peer was lost, when `wait_when_lost`). `Ok(None)`: the deadline passed.
    fn link(
        &self,
        deadline: Option<Instant>,
        wait_when_lost: bool,
    ) -> Result<Option<Arc<Link>>, PipeError> {
        let mut peer = self.lock();
        loop {
            match &*peer {
                Peer::Connected(link) => return Ok(Some(Arc::clone(link))),
                Peer::Closed => return Err(PipeError::Closed),
                Peer::Lost if !wait_when_lost => return Err(PipeError::Closed),
                Peer::Waiting | Peer::Lost => {}
            }
            peer = match crate::deadline::wait(&self.changed, peer, deadline) {
                Ok(peer) => peer,
                Err(_) => return Ok(None),
            };
        }
    }

    fn lose(&self, link: &Arc<Link>) {
        self.lock().lose(link);
    }
}

impl<S, R> Anchor<S, R> {
    /// Whether a point is connected right now.
    pub fn is_connected(&self) -> bool {
        matches!(*self.peer.lock(), Peer::Connected(_))
    }

    /// Waits up to `timeout` for a point to be connected — the first time, or again after its
    /// process was restarted. Returns whether one is; `Err(Closed)` once the anchor is closed.
    pub fn wait_connected(&self, timeout: Duration) -> Result<bool, PipeError> {
        let deadline = crate::deadline::after(Some(timeout));
        Ok(self.peer.link(deadline, true)?.is_some())
    }

    /// Closes the pipe: the point's next call fails with [`PipeError::Closed`], and so do this
    /// anchor's. Closing twice does nothing.
    pub fn close(&self) {
        let previous = std::mem::replace(&mut *self.peer.lock(), Peer::Closed);
        if let Peer::Connected(link) = previous {
            link.shutdown();
        }
        self.peer.changed.notify_all();
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(server);
    }

    /// The connected end for a call that may wait until `call_deadline`.
    fn link_for_call(
        &self,
        call_deadline: Option<Instant>,
    ) -> Result<Option<Arc<Link>>, PipeError> {
        let accept_deadline = crate::deadline::after(Some(self.accept_timeout));
        let deadline = match (call_deadline, accept_deadline) {
            (Some(call), Some(accept)) => Some(call.min(accept)),
            (call, accept) => call.or(accept),
        };
        match self.peer.link(deadline, false)? {
            Some(link) => Ok(Some(link)),
            None if call_deadline.is_some_and(|call| Some(call) == deadline) => Ok(None),
            None => Err(PipeError::NotConnected(self.accept_timeout)),
        }
    }

    /// Marks the peer lost when `result` says it is gone.
    fn note<T>(&self, link: &Arc<Link>, result: Result<T, PipeError>) -> Result<T, PipeError> {
        if matches!(result, Err(PipeError::Closed)) {
            self.peer.lose(link);
        }
        result
    }
}

impl<S: Message, R> Anchor<S, R> {
    /// Sends a message, waiting while the point's queue is full. Messages arrive in order.
    pub fn send(&self, message: S) -> Result<(), PipeError> {
        let link = self.link_for_call(None)?.ok_or(PipeError::Closed)?;
        self.note(&link, link.send(&message))
    }

    /// Sends a message if the point's queue has room now (and the point is connected);
    /// otherwise gives it back in [`TrySendError::Full`].
    pub fn try_send(&self, message: S) -> Result<(), TrySendError<S>> {
        self.send_timeout(message, Duration::ZERO)
    }

    /// Sends a message, waiting at most `timeout` for the point to connect and for room in its
    /// queue; when it stays full the message comes back in [`TrySendError::Full`].
    pub fn send_timeout(&self, message: S, timeout: Duration) -> Result<(), TrySendError<S>> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too long for the clock: no limit.
            return self.send(message).map_err(TrySendError::Failed);
        };
        let Some(link) = self.link_for_call(Some(deadline))? else {
            return Err(TrySendError::Full(message));
        };
        let sent = link.send_before(&message, deadline);
        match self.note(&link, sent)? {
            Sent::Yes => Ok(()),
            Sent::Full => Err(TrySendError::Full(message)),
        }
    }
}

impl<S, R: Message> Anchor<S, R> {
    /// Receives the next message, waiting as long as it takes; [`PipeError::Closed`] once the
    /// point is closed or its process has ended (after every message it sent was received).
    pub fn recv(&self) -> Result<R, PipeError> {
        let link = self.link_for_call(None)?.ok_or(PipeError::Closed)?;
        let received = link.recv_before(None);
        self.note(&link, received)?.ok_or(PipeError::Closed)
    }

    /// Receives the next message, waiting at most `timeout`; `Ok(None)` when none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<R>, PipeError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // Too long for the clock: no limit.
            return self.recv().map(Some);
        };
        let Some(link) = self.link_for_call(Some(deadline))? else {
            return Ok(None);
        };
        let received = link.recv_before(Some(deadline));
        self.note(&link, received)
    }

    /// Receives a message that has already arrived; `Ok(None)` when there is none.
    pub fn try_recv(&self) -> Result<Option<R>, PipeError> {
        self.recv_timeout(Duration::ZERO)
    }
}

impl<S, R> Drop for Anchor<S, R> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_that_stalls_in_its_handshake_does_not_delay_another() {
        let (anchor, point) = create::<u32, u32>(PipeConfig::default()).unwrap();
        let recipe = point.recipe().clone();
        // Proves the token, then never sends its point hello: before handshakes left the
        // accept thread, every later point waited out this one's HANDSHAKE_TIMEOUT.
        let stalled = recipe.endpoint.connect(recipe.max_frame).unwrap();
        // The anchor's `Ready` shows the stalled handshake has begun.
        let mut stream = stalled.stream();
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).unwrap();
        let mut ready = [0u8; 1];
        std::io::Read::read_exact(&mut stream, &mut ready).unwrap();
        let sender = std::thread::spawn(move || point.send(7));
        assert!(
            anchor.wait_connected(HANDSHAKE_TIMEOUT / 2).unwrap(),
            "the real point waited behind the stalled handshake"
        );
        assert_eq!(anchor.recv_timeout(HANDSHAKE_TIMEOUT).unwrap(), Some(7));
        sender.join().unwrap().unwrap();
        drop(stalled);
    }
}
