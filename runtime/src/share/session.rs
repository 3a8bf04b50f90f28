//! One connection to a share's coordinator, on the server's reader thread for it: what the
//! connection's frames become for the applying thread, and how its replies go out.
//!
//! The reader thread decodes nothing but the request's kind. A call is handed to the applying
//! thread as a [`Message`] with the connection, and the reader waits for the call's
//! [`Answer`]: the applying thread writes the reply itself when the socket takes it at once
//! (the common case, so no extra wake-up lies between the call and its reply), and otherwise
//! leaves the rest to this thread, which gives the peer the server's write timeout
//! ([`Peer::flush`], [`Peer::send`]). A peer has one call in flight at a time (its client waits
//! for the reply), so waiting here holds up only that peer. A write ring that comes with its
//! region is mapped here and handed over; a ring request without a region it can map, or a
//! write on the socket (the runtime's clients send writes through their ring, or as calls),
//! ends the connection.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use crate::protocol::share::{Reply, Request};
use crate::share::ring::Ring;
use crate::transport::Connection;
use crate::transport::frame;
use crate::transport::server::{Flow, Peer, Session};

/// What the reader threads tell the applying thread, in one bounded channel.
pub(crate) enum Message {
    /// A call frame (an encoded [`Request::Call`]) to apply after every ring is drained, and
    /// answer on `connection`; the outcome goes to `answered`.
    Call {
        frame: Vec<u8>,
        connection: Arc<Connection>,
        answered: SyncSender<Answer>,
    },
    /// Connection `id` handed over its write ring.
    Attach {
        id: u64,
        ring: Ring,
        connection: Arc<Connection>,
    },
    /// Connection `id` ended: its ring is drained one last time, then dropped.
    Ended { id: u64 },
    /// A writer published in its ring while the applying thread slept.
    Wake,
    /// The owner stops the applying thread (`Share::stop`).
    Stop,
}

/// How far the applying thread got with a reply.
pub(crate) enum Answer {
    /// It went out whole.
    Sent,
    /// It is begun; the rest waits in the connection for the peer to read.
    Flush,
    /// Nothing went out (the socket was full): the reader thread sends it.
    Send(Reply),
    /// The connection broke.
    Broken,
}

/// One connection's session: forwards its requests to the applying thread.
pub(crate) struct ShareSession {
    id: u64,
    applier: SyncSender<Message>,
    has_ring: bool,
    last_error: Arc<Mutex<Option<String>>>,
}

impl ShareSession {
    pub(crate) fn new(
        id: u64,
        applier: SyncSender<Message>,
        last_error: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            id,
            applier,
            has_ring: false,
            last_error,
        }
    }

    fn call(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        // A slot for this call's one answer (so the applier's send never waits); its only
        // sender travels with the call, so a call dropped unanswered (the coordinator is
        // gone) ends the wait.
        let (answered, answer) = std::sync::mpsc::sync_channel(1);
        let message = Message::Call {
            frame: frame.to_vec(),
            connection: Arc::clone(peer.connection()),
            answered,
        };
        if self.applier.send(message).is_err() {
            return Flow::Close;
        }
        // Waits as long as the share is stopped; ends when the coordinator is gone.
        let sent = match answer.recv() {
            Ok(Answer::Sent) => Ok(()),
            Ok(Answer::Flush) => peer.flush(),
            Ok(Answer::Send(reply)) => peer.send(&reply),
            Ok(Answer::Broken) | Err(_) => return Flow::Close,
        };
        match sent {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// Maps the ring whose region came with the request and hands it to the applying thread.
    /// A process's ring writes that cannot be read must not be missed silently: without a
    /// ring its connection ends, so its next call fails.
    fn attach(&mut self, peer: &Peer) -> Flow {
        let attached = match (self.has_ring, peer.take_region()) {
            (false, Some(fd)) => Ring::attach(fd),
            _ => Err(std::io::Error::other("no region came with the request")),
        };
        let ring = match attached {
            Ok(ring) => ring,
            Err(error) => {
                let message = format!("cannot map a write ring: {error}");
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(message);
                return Flow::Close;
            }
        };
        let message = Message::Attach {
            id: self.id,
            ring,
            connection: Arc::clone(peer.connection()),
        };
        if self.applier.send(message).is_err() {
            return Flow::Close;
        }
        self.has_ring = true;
        Flow::Continue
    }
}

impl Session for ShareSession {
    fn on_frame(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        match frame::decode::<Request>(frame) {
            Ok(Request::Call { .. }) => self.call(peer, frame),
            Ok(Request::AttachRing) => self.attach(peer),
            Ok(Request::Wake) => match self.applier.try_send(Message::Wake) {
                // A full channel wakes the applier anyway: it drains every ring as it works.
                Ok(()) | Err(TrySendError::Full(_)) => Flow::Continue,
                Err(TrySendError::Disconnected(_)) => Flow::Close,
            },
            Ok(Request::Write { .. }) | Err(_) => Flow::Close,
        }
    }

    /// The last writes of a peer that hung up returned before it did: its ring is drained
    /// once more before it is dropped.
    fn on_end(&mut self, _peer: &Peer) {
        if self.has_ring {
            let _ = self.applier.send(Message::Ended { id: self.id });
        }
    }
}
