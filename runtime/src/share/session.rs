//! One connection to a share's coordinator, on the server's reader thread for it: what the
//! connection's frames become for the applying thread, and how its replies go out.
//!
//! The reader thread decodes nothing but the request's kind. A call is handed to the applying
//! thread as a [`Message`] with the connection's [`Outbox`], and the reader goes back to
//! reading: a peer sends nothing while its call is unanswered (its client waits for the
//! reply), so nothing is waiting behind it. The applying thread writes the reply itself when
//! the socket takes it at once — the common case, so no wake-up of another thread lies on a
//! call's path or after it — and otherwise hands the rest to the connection's writer thread,
//! started at the first such reply, which gives the peer the server's write timeout and drops
//! it past that. A write ring that comes with its region is mapped here and handed over; a
//! ring request without a region it can map, or a write on the socket (the runtime's clients
//! send writes through their ring, or as calls), ends the connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::protocol::share::{Reply, ReplyRef, Request};
use crate::share::ring::Ring;
use crate::transport::frame;
use crate::transport::server::{Flow, Peer, Session, WRITE_TIMEOUT};
use crate::transport::{Connection, TransportError};

/// What the reader threads tell the applying thread, in one bounded channel.
pub(crate) enum Message {
    /// A call frame (an encoded [`Request::Call`]) to apply after every ring is drained, its
    /// reply to go out through `outbox`.
    Call { frame: Vec<u8>, outbox: Arc<Outbox> },
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
    /// The owner stops the applying thread (`Share::pause`).
    Stop,
}

/// Replies a connection's writer thread still has to write (a conforming peer leaves at most
/// one: it sends its next call only once it read the whole reply).
const WRITER_QUEUE: usize = 2;

/// How one connection's replies go out without the applying thread ever waiting for the peer.
pub(crate) struct Outbox {
    connection: Arc<Connection>,
    /// The writer thread's queue, once a reply could not go out at once.
    writer: Mutex<Option<SyncSender<Job>>>,
    /// Replies handed to the writer thread and not yet written: while there are any, later
    /// replies queue behind them, so replies keep their order.
    pending: Arc<AtomicUsize>,
}

impl Outbox {
    fn new(connection: Arc<Connection>) -> Self {
        Self {
            connection,
            writer: Mutex::new(None),
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Writes `reply` as far as the socket takes it now, and leaves the rest to the writer
    /// thread. Never waits for the peer.
    pub(crate) fn reply(&self, reply: &ReplyRef<'_>) {
        if self.pending.load(Ordering::Acquire) > 0 {
            return self.hand(Job::Send(owned(reply)));
        }
        match self
            .connection
            .send_message_before(reply, Some(Instant::now()))
        {
            Ok(true) if self.connection.has_unsent() => self.hand(Job::Rest),
            Ok(true) => {}
            Ok(false) => self.hand(Job::Send(owned(reply))),
            Err(TransportError::Wire(_)) => self.hand(Job::Send(Reply::Failed(
                "the reply is larger than a frame".to_owned(),
            ))),
            Err(_) => self.connection.shutdown(),
        }
    }

    /// Ends the connection without a reply.
    pub(crate) fn abandon(&self) {
        self.connection.shutdown();
    }

    /// Gives the writer thread a job, starting the thread if there is none. A peer with more
    /// replies unread than a conforming one can have is dropped.
    fn hand(&self, job: Job) {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.is_none() {
            *writer = self.start_writer();
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        let queued = writer.as_ref().is_some_and(|w| w.try_send(job).is_ok());
        if !queued {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.connection.shutdown();
        }
    }

    fn start_writer(&self) -> Option<SyncSender<Job>> {
        let (sender, jobs) = mpsc::sync_channel::<Job>(WRITER_QUEUE);
        let (connection, pending) = (Arc::clone(&self.connection), Arc::clone(&self.pending));
        std::thread::Builder::new()
            .name("skprocess-share-reply".to_owned())
            .spawn(move || write_replies(&connection, &pending, &jobs))
            .ok()?;
        Some(sender)
    }
}

/// What a connection's writer thread does.
enum Job {
    /// Send the rest of the reply the connection began.
    Rest,
    /// Send a whole reply.
    Send(Reply),
}

/// A reply that borrows the applying thread's buffers, owned to travel to the writer.
fn owned(reply: &ReplyRef<'_>) -> Reply {
    match reply {
        ReplyRef::Value(value) => Reply::Value(value.to_vec()),
        ReplyRef::Failed(message) => Reply::Failed((*message).to_owned()),
        ReplyRef::Panicked { method, panic } => Reply::Panicked {
            method: (*method).to_owned(),
            panic: (*panic).clone(),
        },
    }
}

/// A connection's writer thread: writes each job, giving the peer the server's write timeout
/// for it, and drops a peer that does not take it by then; ends with the connection's outbox.
fn write_replies(connection: &Connection, pending: &AtomicUsize, jobs: &Receiver<Job>) {
    for job in jobs {
        let deadline = Instant::now().checked_add(WRITE_TIMEOUT);
        let written = match job {
            Job::Rest => connection.flush_before(deadline),
            Job::Send(reply) => connection
                .send_message_before(&reply, deadline)
                .map(|begun| begun && !connection.has_unsent()),
        };
        if !matches!(written, Ok(true)) {
            tracing::debug!("a share's peer took no reply for {WRITE_TIMEOUT:?}; it was dropped");
            connection.shutdown();
        }
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection's session: forwards its requests to the applying thread.
pub(crate) struct ShareSession {
    id: u64,
    applier: SyncSender<Message>,
    /// Made at the first call.
    outbox: Option<Arc<Outbox>>,
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
            outbox: None,
            has_ring: false,
            last_error,
        }
    }

    fn call(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        let outbox = self
            .outbox
            .get_or_insert_with(|| Arc::new(Outbox::new(Arc::clone(peer.connection()))));
        let message = Message::Call {
            frame: frame.to_vec(),
            outbox: Arc::clone(outbox),
        };
        match self.applier.send(message) {
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
