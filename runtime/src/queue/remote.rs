//! A handle's connection to the broker from another process: one per thread and queue, opened
//! on first use, so threads sharing a handle never wait behind each other's reads. A thread's
//! connection closes when the thread ends, which returns whatever it still held.

use std::cell::RefCell;
use std::time::Duration;

use crate::error::Error;
use crate::protocol::queue::{Reply, Request, split_message};
use crate::transport::Connection;
use crate::transport::TransportError;
use crate::transport::clients::Clients;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame::{self, FrameReader};
use crate::transport::server;

thread_local! {
    /// This thread's connections, by the broker's token.
    static LINKS: RefCell<Clients<RemoteLink>> = const { RefCell::new(Clients::new()) };
}

/// What the next read found.
pub(crate) enum Fetched<'a> {
    /// One encoded message.
    Msg(&'a [u8]),
    /// The queue's end (one reader stops here).
    End,
    /// Nothing before the wait ended.
    Empty,
}

/// One thread's connection to one broker, with the batch it prefetched.
pub(crate) struct RemoteLink {
    connection: Connection,
    replies: FrameReader,
    /// The last batch: encoded messages, and how far they were read.
    batch: Vec<u8>,
    read: usize,
    /// Deliveries of the batch not handed out yet, and the sequence of the next one.
    left: u32,
    next_seq: u64,
    end_in_batch: bool,
    /// The last delivery handed to the user, and the last one acknowledged.
    handed: Option<u64>,
    acked: Option<u64>,
}

/// Runs `f` on this thread's connection to `endpoint`, opening it first if needed. A
/// connection that failed is dropped, so the next call opens a fresh one.
pub(crate) fn with_link<R>(
    endpoint: &Endpoint,
    max_frame: u32,
    f: impl FnOnce(&mut RemoteLink) -> Result<R, Error>,
) -> Result<R, Error> {
    LINKS.with(|links| {
        links.borrow_mut().with(
            endpoint,
            |endpoint| open(endpoint, max_frame),
            f,
            |error| {
                matches!(
                    error,
                    Error::Gone {
                        peer: crate::error::Peer::Queue
                    }
                )
            },
        )
    })
}

/// Opens a connection to the broker: a full broker says so, any other failure is a closed
/// queue.
fn open(endpoint: &Endpoint, max_frame: u32) -> Result<RemoteLink, Error> {
    match server::connect(endpoint, max_frame) {
        Ok(connection) => Ok(RemoteLink::new(connection, max_frame)),
        Err(full @ TransportError::TooManyConnections { .. }) => Err(full.into()),
        Err(_) => Err(closed()),
    }
}

/// Gives back what this thread prefetched from `endpoint` and acknowledges what it read, if it
/// has a connection (an iterator that stops early).
pub(crate) fn settle(endpoint: &Endpoint) {
    LINKS.with(|links| {
        if let Some(link) = links.borrow_mut().get_mut(endpoint) {
            // A failed send means the connection is gone, which returns everything anyway.
            let _ = link.settle();
        }
    });
}

fn closed() -> Error {
    Error::Gone {
        peer: crate::error::Peer::Queue,
    }
}

impl RemoteLink {
    fn new(connection: Connection, max_frame: u32) -> Self {
        Self {
            connection,
            replies: FrameReader::new(max_frame),
            batch: Vec::new(),
            read: 0,
            left: 0,
            next_seq: 0,
            end_in_batch: false,
            handed: None,
            acked: None,
        }
    }

    /// Appends one encoded message, waiting for room up to `wait` (`None`: as long as it
    /// takes); `Ok(false)` when the queue stayed full.
    pub(crate) fn put(&mut self, message: &[u8], wait: Option<Duration>) -> Result<bool, Error> {
        let request = Request::Put {
            message,
            wait_ms: wait.map(millis),
        };
        self.connection.send(&request).map_err(|_| closed())?;
        match read_reply(&self.connection, &mut self.replies, |reply| match reply {
            Reply::Put { accepted } => Some(accepted),
            _ => None,
        })? {
            Some(accepted) => Ok(accepted),
            None => Err(closed()),
        }
    }

    /// Appends the messages of `payload` (see `Request::PutMany`), waiting for room.
    pub(crate) fn put_many(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.connection
            .send(&Request::PutMany { payload })
            .map_err(|_| closed())?;
        match read_reply(&self.connection, &mut self.replies, |reply| match reply {
            Reply::Put { accepted } => Some(accepted),
            _ => None,
        })? {
            Some(true) => Ok(()),
            _ => Err(closed()),
        }
    }

    /// Appends an end.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.connection.send(&Request::End).map_err(|_| closed())
    }

    /// The next delivery: from the prefetched batch, else a fetch of up to `max` that waits up
    /// to `wait` (`None`: until something arrives).
    pub(crate) fn next(&mut self, max: u32, wait: Option<Duration>) -> Result<Fetched<'_>, Error> {
        if self.left == 0 && !self.end_in_batch {
            self.fetch(max, wait)?;
        }
        if self.left > 0 {
            return self.hand_message();
        }
        if self.end_in_batch {
            self.end_in_batch = false;
            self.hand(self.next_seq);
            self.next_seq += 1;
            // The end is consumed: say so now, so a reader that exits after it leaves nothing
            // behind to requeue.
            self.settle()?;
            return Ok(Fetched::End);
        }
        Ok(Fetched::Empty)
    }

    fn hand(&mut self, seq: u64) {
        self.handed = Some(seq);
    }

    fn hand_message(&mut self) -> Result<Fetched<'_>, Error> {
        let seq = self.next_seq;
        self.left -= 1;
        self.next_seq += 1;
        self.hand(seq);
        let Some((message, rest)) = split_message(&self.batch[self.read..]) else {
            // The broker built this payload: a short one means the connection is corrupt.
            return Err(closed());
        };
        self.read = self.batch.len() - rest.len();
        let start = self.read - message.len();
        Ok(Fetched::Msg(&self.batch[start..self.read]))
    }

    fn fetch(&mut self, max: u32, wait: Option<Duration>) -> Result<(), Error> {
        let request = Request::Fetch {
            ack_through: self.unacked(),
            max,
            wait_ms: wait.map(millis),
        };
        self.connection.send(&request).map_err(|_| closed())?;
        self.acked = self.handed;
        let batch = &mut self.batch;
        let received = read_reply(&self.connection, &mut self.replies, |reply| match reply {
            Reply::Batch {
                first,
                count,
                end,
                payload,
            } => {
                batch.clear();
                batch.extend_from_slice(payload);
                Some((first, count, end))
            }
            _ => None,
        })?;
        let Some((first, count, end)) = received else {
            return Err(closed());
        };
        self.read = 0;
        self.next_seq = first;
        self.end_in_batch = end && count > 0;
        self.left = count.saturating_sub(u32::from(self.end_in_batch));
        Ok(())
    }

    /// Acknowledges what was read and gives back what was prefetched but not read.
    pub(crate) fn settle(&mut self) -> Result<(), Error> {
        if let Some(through) = self.unacked() {
            self.connection
                .send(&Request::Ack { through })
                .map_err(|_| closed())?;
            self.acked = Some(through);
        }
        if self.left > 0 || self.end_in_batch {
            let from = self.next_seq;
            self.left = 0;
            self.end_in_batch = false;
            self.connection
                .send(&Request::Release { from })
                .map_err(|_| closed())?;
        }
        Ok(())
    }

    fn unacked(&self) -> Option<u64> {
        self.handed.filter(|handed| Some(*handed) != self.acked)
    }
}

/// Reads one reply; `Ok(None)` when it was not what `f` expected.
fn read_reply<R>(
    connection: &Connection,
    replies: &mut FrameReader,
    f: impl FnOnce(Reply<'_>) -> Option<R>,
) -> Result<Option<R>, Error> {
    let mut stream = connection.stream();
    let frame = match replies.read_frame(&mut stream) {
        Ok(Some(frame)) => frame,
        Ok(None) | Err(_) => return Err(closed()),
    };
    match frame::decode::<Reply>(frame.bytes()) {
        Ok(Reply::Closed) | Err(_) => Err(closed()),
        Ok(reply) => Ok(f(reply)),
    }
}

fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}
