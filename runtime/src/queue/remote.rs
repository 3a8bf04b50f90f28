//! A handle's connection to the broker from another process: one per thread and queue, opened
//! on first use, so threads sharing a handle never wait behind each other's reads.
//!
//! Delivery: the message handed to user code last is the one in hand; taking the next one
//! acknowledges it (a store into the shared [`LeaseWords`], or an acknowledgement frame
//! where there is no shared memory), as do [`ack`], dropping the handle ([`settle`]) and the
//! thread's end (the link's drop). A crash gives back only the message in hand and what was
//! prefetched and not handed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::queue::{Reply, Request, split_message};
use crate::queue::lease::LeaseWords;
use crate::sys::shm;
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

/// Live handles of each queue in this process (one not created here), by its token: the
/// last one's drop is the reader dropping its handle.
static HANDLES: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// A handle of the queue at `endpoint` was made in this process (deserialized or cloned).
pub(crate) fn handle_made(endpoint: &Endpoint) {
    let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
    *handles.entry(endpoint.token.clone()).or_default() += 1;
}

/// A handle of the queue at `endpoint` was dropped; when it was this process's last, the
/// calling thread's link acknowledges what it read and gives back what it prefetched. (Other
/// threads' links do so when their threads end.)
pub(crate) fn handle_dropped(endpoint: &Endpoint) {
    let last = {
        let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
        match handles.get_mut(&endpoint.token) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                handles.remove(&endpoint.token);
                true
            }
            None => true,
        }
    };
    if last {
        settle(endpoint);
    }
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
    /// The last delivery handed to the user, and the last one acknowledged by a frame.
    handed: Option<u64>,
    acked: Option<u64>,
    /// The words shared with the broker, once the first fetch handed them over; `None`
    /// before, or where there is no shared memory (then each hand sends an acknowledgement).
    words: Option<LeaseWords>,
    /// Whether the first fetch happened (and with it the try to share the words).
    registered: bool,
    /// The broker's revocation count this link last saw.
    revoked: u64,
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
/// has a connection (an iterator that stops early, a handle dropped). Quiet while the thread's
/// links are being torn down (each link settles itself then).
pub(crate) fn settle(endpoint: &Endpoint) {
    let _ = LINKS.try_with(|links| {
        if let Ok(mut links) = links.try_borrow_mut()
            && let Some(link) = links.get_mut(endpoint)
        {
            // A failed send means the connection is gone, which returns everything anyway.
            let _ = link.settle();
        }
    });
}

/// Acknowledges the message this thread was handed last from `endpoint`, if any.
pub(crate) fn ack(endpoint: &Endpoint) -> Result<(), Error> {
    LINKS.with(|links| match links.borrow_mut().get_mut(endpoint) {
        Some(link) => link.ack(),
        None => Ok(()),
    })
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
            words: None,
            registered: false,
            revoked: 0,
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

    /// Appends the messages of `payload` (see `Request::PutMany`) in order, waiting for room
    /// up to `wait` (`None`: as long as it takes); how many, from the first, were appended.
    pub(crate) fn put_many(
        &mut self,
        payload: &[u8],
        wait: Option<Duration>,
    ) -> Result<u32, Error> {
        let request = Request::PutMany {
            payload,
            wait_ms: wait.map(millis),
        };
        self.connection.send(&request).map_err(|_| closed())?;
        match read_reply(&self.connection, &mut self.replies, |reply| match reply {
            Reply::PutMany { accepted } => Some(accepted),
            _ => None,
        })? {
            Some(accepted) => Ok(accepted),
            None => Err(closed()),
        }
    }

    /// Appends an end.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        self.connection.send(&Request::End).map_err(|_| closed())
    }

    /// The next delivery: from the prefetched batch, else a fetch of up to `max` that waits up
    /// to `wait` (`None`: until something arrives).
    pub(crate) fn next(&mut self, max: u32, wait: Option<Duration>) -> Result<Fetched<'_>, Error> {
        self.drop_revoked_batch();
        if self.left == 0 && !self.end_in_batch {
            self.fetch(max, wait)?;
        }
        if self.left > 0 {
            return self.hand_message();
        }
        if self.end_in_batch {
            self.end_in_batch = false;
            self.hand(self.next_seq)?;
            self.next_seq += 1;
            // The end is consumed: say so now, so a reader that exits after it leaves nothing
            // behind to requeue.
            self.settle()?;
            return Ok(Fetched::End);
        }
        Ok(Fetched::Empty)
    }

    /// Hands delivery `seq` to user code, which acknowledges the one handed before it.
    fn hand(&mut self, seq: u64) -> Result<(), Error> {
        match &self.words {
            Some(words) => words.set_done_below(seq),
            None => self.send_ack()?,
        }
        self.handed = Some(seq);
        Ok(())
    }

    /// Acknowledges the message in hand ([`Queue::ack`](crate::Queue::ack)).
    pub(crate) fn ack(&mut self) -> Result<(), Error> {
        match (&self.words, self.handed) {
            (Some(words), Some(handed)) => {
                words.set_done_below(handed.saturating_add(1));
                Ok(())
            }
            _ => self.send_ack(),
        }
    }

    /// Sends an acknowledgement of everything handed so far, if one is due.
    fn send_ack(&mut self) -> Result<(), Error> {
        if let Some(through) = self.unacked() {
            self.connection
                .send(&Request::Ack { through })
                .map_err(|_| closed())?;
            self.acked = Some(through);
        }
        Ok(())
    }

    /// The broker gave this reader's deliveries back (its lease ran out): what is left of the
    /// batch is someone else's now.
    fn drop_revoked_batch(&mut self) {
        let Some(revoked) = self.words.as_ref().map(LeaseWords::revoked) else {
            return;
        };
        if revoked != self.revoked {
            self.revoked = revoked;
            self.left = 0;
            self.end_in_batch = false;
        }
    }

    fn hand_message(&mut self) -> Result<Fetched<'_>, Error> {
        let seq = self.next_seq;
        self.left -= 1;
        self.next_seq += 1;
        self.hand(seq)?;
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
        if self.registered {
            self.connection.send(&request).map_err(|_| closed())?;
        } else {
            self.register(&request)?;
        }
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

    /// Sends the first fetch, and with it the shared words when this system has shared
    /// memory (else acknowledgements travel as frames).
    fn register(&mut self, request: &Request<'_>) -> Result<(), Error> {
        self.registered = true;
        if let Ok((words, fd)) = LeaseWords::create() {
            let frame = frame::encode_frame(request, self.replies.max()).map_err(|_| closed())?;
            shm::send_with_fd(self.connection.stream(), &frame, &fd).map_err(|_| closed())?;
            self.words = Some(words);
            return Ok(());
        }
        self.connection.send(request).map_err(|_| closed())
    }

    /// Acknowledges what was read and gives back what was prefetched but not read.
    pub(crate) fn settle(&mut self) -> Result<(), Error> {
        if let (Some(words), Some(handed)) = (&self.words, self.handed) {
            words.set_done_below(handed.saturating_add(1));
        }
        self.send_ack()?;
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

impl Drop for RemoteLink {
    /// The thread ended: what it read is done, what it prefetched goes back.
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}
