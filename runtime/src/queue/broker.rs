//! The broker: in the process that created a queue, the shared buffer and the server that
//! handles in other processes connect to. Each connection is a session on the server's reader
//! thread for it, which handles its requests one at a time, so a reader waiting for messages
//! never holds up another. A reading connection hands over its [`LeaseWords`] with its first
//! fetch; when it ends, what the reader finished is done and the rest goes back. With a lease,
//! the [`Keeper`] gives back what silent readers hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::protocol::queue::{Reply, Request, append_message, split_message};
use crate::queue::buffer::{Entry, ReaderId};
use crate::queue::hub::{Hub, Put, Taken};
use crate::queue::keeper::{Keeper, Watched};
use crate::queue::lease::LeaseWords;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::server::{Flow, Peer, Server, ServerConfig, Session};

/// Room for a batch reply's header (variant, sequence, count) in a frame.
pub(crate) const BATCH_HEADER: u32 = 64;

/// The creating process's side of a queue. Dropping it closes the queue: waiting calls in
/// this process end, and every connection is shut down (the server's drop), so readers
/// elsewhere get a clear error instead of waiting forever.
pub(crate) struct Broker {
    hub: Arc<Hub<Vec<u8>>>,
    server: Server,
    keeper: Option<Arc<Keeper>>,
}

impl Broker {
    /// Starts the broker's server, and its lease keeper when `lease` is not `Duration::MAX`.
    pub(crate) fn start(
        capacity: usize,
        max_frame: u32,
        socket_dir: Option<&std::path::Path>,
        lease: Duration,
    ) -> Result<Self, Error> {
        let hub = Arc::new(Hub::new(capacity));
        let keeper = match lease {
            Duration::MAX => None,
            lease => Some(Keeper::start(lease, Arc::clone(&hub))?),
        };
        let mut config = ServerConfig::new("skprocess-queue", max_frame);
        config.socket_dir = socket_dir.map(Into::into);
        config.regions = true;
        let server = Server::start(config, {
            let hub = Arc::clone(&hub);
            let keeper = keeper.clone();
            move |_: &Peer| {
                let session = QueueSession::new(Arc::clone(&hub), max_frame, keeper.clone());
                Some(session)
            }
        });
        let server = match server {
            Ok(server) => server,
            Err(error) => {
                if let Some(keeper) = &keeper {
                    keeper.stop();
                }
                return Err(error.into());
            }
        };
        Ok(Self {
            hub,
            server,
            keeper,
        })
    }

    /// Where handles connect.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.server.endpoint()
    }

    /// The buffer, for calls in this process.
    pub(crate) fn hub(&self) -> &Hub<Vec<u8>> {
        &self.hub
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.hub.close();
        if let Some(keeper) = &self.keeper {
            keeper.stop();
        }
    }
}

/// One connection's requests.
struct QueueSession {
    hub: Arc<Hub<Vec<u8>>>,
    max_frame: u32,
    /// Registered at the first fetch: a connection that only puts holds no leases.
    reader: Option<ReaderId>,
    /// The reader's shared words, when it handed them over with its first fetch.
    words: Option<Arc<LeaseWords>>,
    keeper: Option<Arc<Keeper>>,
    /// This reader, as the keeper watches it.
    watched: Option<Arc<Watched>>,
    payload: Vec<u8>,
}

impl Session for QueueSession {
    /// Serves one request; a malformed one or a failed reply ends the connection.
    fn on_frame(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        let Ok(request) = frame::decode::<Request>(frame) else {
            return Flow::Close;
        };
        if let Some(watched) = &self.watched {
            watched.heard_now();
        }
        match self.handle(peer, request) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// Requeues whatever the reader still held and had not finished: after a goodbye
    /// (`Ack`, `Release`) nothing, after a crash the message in hand and the prefetch.
    fn on_end(&mut self, _peer: &Peer) {
        if let Some(reader) = self.reader.take() {
            let done_below = self.words.as_deref().map_or(0, LeaseWords::done_below);
            self.hub
                .update(|buffer| buffer.remove_reader(reader, done_below));
            if let Some(keeper) = &self.keeper {
                keeper.forget(reader);
            }
        }
    }
}

impl QueueSession {
    fn new(hub: Arc<Hub<Vec<u8>>>, max_frame: u32, keeper: Option<Arc<Keeper>>) -> Self {
        Self {
            hub,
            max_frame,
            reader: None,
            words: None,
            keeper,
            watched: None,
            payload: Vec::new(),
        }
    }

    fn handle(&mut self, peer: &Peer, request: Request<'_>) -> Result<(), Error> {
        match request {
            Request::Put { message, wait_ms } => self.put(peer, message, wait_ms),
            Request::PutMany { payload, wait_ms } => self.put_many(peer, payload, wait_ms),
            Request::Fetch {
                ack_through,
                max,
                wait_ms,
            } => {
                self.register(peer)?;
                self.fetch(peer, ack_through, max, wait_ms)
            }
            Request::Ack { through } => {
                let reader = self.reader()?;
                self.hub.update(|buffer| buffer.ack(reader, through));
                Ok(())
            }
            Request::Release { from } => {
                let reader = self.reader()?;
                self.hub.update(|buffer| buffer.release(reader, from));
                Ok(())
            }
            Request::End => {
                self.hub.push_end();
                Ok(())
            }
        }
    }

    fn reader(&mut self) -> Result<ReaderId, Error> {
        if let Some(reader) = self.reader {
            return Ok(reader);
        }
        let reader = self.hub.update(|buffer| buffer.add_reader());
        self.reader = Some(reader);
        if let Some(keeper) = &self.keeper {
            self.watched = Some(keeper.watch(reader, self.words.clone()));
        }
        Ok(reader)
    }

    /// At the first fetch: maps the words the reader handed over with it, if any. A reader
    /// whose words cannot be mapped is refused (its acknowledgements would be lost).
    fn register(&mut self, peer: &Peer) -> Result<(), Error> {
        if self.reader.is_some() {
            return Ok(());
        }
        if let Some(fd) = peer.take_region() {
            self.words = Some(Arc::new(LeaseWords::attach(fd)?));
        }
        self.reader().map(drop)
    }

    fn put(&mut self, peer: &Peer, message: &[u8], wait_ms: Option<u64>) -> Result<(), Error> {
        let deadline = deadline_in(wait_ms);
        let reply = match self
            .hub
            .put(message.to_vec(), deadline, || !peer.input_pending())
        {
            Put::Accepted => Reply::Put { accepted: true },
            Put::Full(_) => Reply::Put { accepted: false },
            Put::Closed(_) => Reply::Closed,
        };
        Ok(peer.send(&reply)?)
    }

    /// Appends each message of `payload` in order, waiting for room up to `wait_ms`, and says
    /// how many it appended; a payload cut short is a broken peer.
    fn put_many(
        &mut self,
        peer: &Peer,
        mut payload: &[u8],
        wait_ms: Option<u64>,
    ) -> Result<(), Error> {
        let deadline = deadline_in(wait_ms);
        let mut accepted = 0u32;
        while !payload.is_empty() {
            let (message, rest) = split_message(payload).ok_or(Error::Gone {
                peer: crate::error::Peer::Connection,
            })?;
            match self
                .hub
                .put(message.to_vec(), deadline, || !peer.input_pending())
            {
                Put::Accepted => {}
                // Still full when the wait ended: the rest goes back to the peer.
                Put::Full(_) if wait_ms.is_some() && !peer.input_pending() => break,
                // The peer hung up while the queue was full: what it sent is dropped with it
                // (its call did not return, so it was never promised).
                Put::Full(_) => {
                    return Err(Error::Gone {
                        peer: crate::error::Peer::Connection,
                    });
                }
                Put::Closed(_) => return Ok(peer.send(&Reply::Closed)?),
            }
            payload = rest;
            accepted = accepted.saturating_add(1);
        }
        Ok(peer.send(&Reply::PutMany { accepted })?)
    }

    fn fetch(
        &mut self,
        peer: &Peer,
        ack: Option<u64>,
        max: u32,
        wait_ms: Option<u64>,
    ) -> Result<(), Error> {
        let reader = self.reader()?;
        if let Some(through) = ack {
            self.hub.update(|buffer| buffer.ack(reader, through));
        }
        let deadline = deadline_in(wait_ms);
        let payload = &mut self.payload;
        let watched = self.watched.as_deref();
        payload.clear();
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        // Each message costs its length prefix too; the batch header needs the slack.
        let budget = self.max_frame.saturating_sub(BATCH_HEADER) as usize;
        let cost: fn(&Vec<u8>) -> usize = |message| message.len() + 4;
        let taken = self.hub.take_leased(
            reader,
            max,
            (budget, cost),
            deadline,
            || !peer.input_pending(),
            |buffer, grant| {
                // A reader that waited long for these starts its lease now.
                if let Some(watched) = watched {
                    watched.heard_now();
                }
                for entry in buffer.leased_from(reader, grant.first) {
                    if let Entry::Msg(message) = entry {
                        append_message(payload, message);
                    }
                }
                grant
            },
        );
        let reply = match taken {
            Taken::Ready(grant) => Reply::Batch {
                first: grant.first,
                count: u32::try_from(grant.count).unwrap_or(u32::MAX),
                end: grant.end,
                payload,
            },
            Taken::Empty => Reply::Batch {
                first: 0,
                count: 0,
                end: false,
                payload: &[],
            },
            Taken::Closed => Reply::Closed,
        };
        Ok(peer.send(&reply)?)
    }
}

fn deadline_in(wait_ms: Option<u64>) -> Option<Instant> {
    match wait_ms {
        None => None,
        // A wait too long for the clock is no deadline.
        Some(ms) => crate::deadline::after(Some(Duration::from_millis(ms))).or(None),
    }
}
