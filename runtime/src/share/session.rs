//! One connection as the coordinator serves it: the bytes read from it, its write ring, and
//! the reply on its way out.
//!
//! Nothing here blocks the coordinator's thread. Reads take what the kernel has; a reply goes
//! out as far as the socket takes it at once, and the rest waits here until the peer reads
//! (the loop waits for room among its other streams). While a reply waits, the connection's
//! requests are not read: a peer has one call in flight at a time, so one that does not read
//! its reply (a stopped process) holds at most one reply and one read buffer of memory, and
//! holds up no one else.

use std::io::ErrorKind;

use crate::protocol::share::ReplyRef;
use crate::share::client::SHARE_MAX_FRAME;
use crate::share::peer::Inbound;
use crate::share::ring::Ring;
use crate::sys::shm::{self, RegionFd, Watch};
use crate::transport::Connection;
use crate::transport::frame;

/// A reply buffer larger than this is given back once sent, so one large read does not keep
/// its memory for the life of the connection.
const KEEP_REPLY_CAPACITY: usize = 1 << 20;

/// One connection to the coordinator.
pub(crate) struct Session {
    pub(crate) connection: Connection,
    pub(crate) inbound: Inbound,
    /// The process's write ring, once it handed one over.
    pub(crate) ring: Option<Ring>,
    /// A descriptor that arrived with the bytes, waiting for the ring request among them.
    ring_fd: Option<RegionFd>,
    /// A call was read and waits for the next full drain before it is answered.
    pub(crate) call_waiting: bool,
    pub(crate) closed: bool,
    /// The encoded reply frame being sent, and how much of it went out.
    out: Vec<u8>,
    out_sent: usize,
}

/// What one read got.
pub(crate) enum Read {
    Bytes,
    Nothing,
    Closed,
}

impl Session {
    pub(crate) fn new(connection: Connection) -> Self {
        Self {
            connection,
            inbound: Inbound::new(SHARE_MAX_FRAME),
            ring: None,
            ring_fd: None,
            call_waiting: false,
            closed: false,
            out: Vec::new(),
            out_sent: 0,
        }
    }

    /// Whether part of a reply still waits for the peer to read.
    pub(crate) fn sending(&self) -> bool {
        self.out_sent < self.out.len()
    }

    /// Whether its requests are read now: open, no call held, no reply on its way.
    pub(crate) fn readable(&self) -> bool {
        !self.closed && !self.call_waiting && !self.sending()
    }

    /// What the loop waits for on this connection, if anything.
    pub(crate) fn watch(&self) -> Option<Watch<'_>> {
        let stream = self.connection.stream();
        if self.closed {
            None
        } else if self.sending() {
            Some(Watch::write(stream))
        } else if !self.call_waiting {
            Some(Watch::read(stream))
        } else {
            None
        }
    }

    /// One non-blocking read. A descriptor that comes with the bytes is kept for the ring
    /// request; a second one, or any other control message, ends the connection.
    pub(crate) fn receive(&mut self) -> Read {
        match shm::receive(self.connection.stream(), self.inbound.spare()) {
            shm::Received::Bytes(n, fd) => {
                self.inbound.filled(n);
                if let Some(fd) = fd {
                    if self.ring_fd.is_some() || self.ring.is_some() {
                        self.closed = true;
                        return Read::Closed;
                    }
                    self.ring_fd = Some(fd);
                }
                Read::Bytes
            }
            shm::Received::Nothing => Read::Nothing,
            shm::Received::Closed | shm::Received::Refused => {
                self.closed = true;
                Read::Closed
            }
        }
    }

    /// The descriptor that came with the ring request.
    pub(crate) fn take_ring_fd(&mut self) -> Option<RegionFd> {
        self.ring_fd.take()
    }

    /// Queues `reply` and sends what the socket takes now.
    pub(crate) fn reply(&mut self, reply: &ReplyRef<'_>) {
        self.out_sent = 0;
        if frame::encode_frame_into(reply, SHARE_MAX_FRAME, &mut self.out).is_err() {
            let failed = ReplyRef::Failed("the reply is larger than a frame");
            if frame::encode_frame_into(&failed, SHARE_MAX_FRAME, &mut self.out).is_err() {
                self.closed = true;
                return;
            }
        }
        self.flush();
    }

    /// Sends what the socket takes of the waiting reply, without waiting.
    pub(crate) fn flush(&mut self) {
        if !self.sending() || self.closed {
            return;
        }
        let rest = self.out.get(self.out_sent..).unwrap_or_default();
        match self.connection.stream().send_nonblocking(rest, &[]) {
            Ok(n) => self.out_sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => self.closed = true,
        }
        if !self.sending() {
            self.out_sent = 0;
            self.out.clear();
            if self.out.capacity() > KEEP_REPLY_CAPACITY {
                self.out = Vec::new();
            }
        }
    }
}
