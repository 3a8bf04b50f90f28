//! The broker: in the process that created a queue, the shared buffer and the service that
//! handles in other processes connect to. Each connection gets a thread that reads its
//! requests one at a time, so a reader waiting for messages never holds up another.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::protocol::queue::{Reply, Request, append_message, split_message};
use crate::queue::buffer::{Entry, ReaderId};
use crate::queue::hub::{Hub, Put, Taken};
use crate::sys::{self, Source};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::service::{Endpoint, Service};

/// Room for a batch reply's header (variant, sequence, count) in a frame.
pub(crate) const BATCH_HEADER: u32 = 64;

/// The creating process's side of a queue. Dropping it closes the queue: waiting calls in
/// this process end, and every connection is shut down, so readers elsewhere get a clear
/// error instead of waiting forever.
pub(crate) struct Broker {
    hub: Arc<Hub<Vec<u8>>>,
    connections: Arc<Mutex<Vec<Weak<Connection>>>>,
    service: Service,
}

impl Broker {
    /// Starts the broker's service.
    pub(crate) fn start(capacity: usize, max_frame: u32) -> Result<Self, Error> {
        let hub = Arc::new(Hub::new(capacity));
        let connections: Arc<Mutex<Vec<Weak<Connection>>>> = Arc::default();
        let service = Service::start("skprocess-queue", max_frame, None, {
            let hub = Arc::clone(&hub);
            let connections = Arc::clone(&connections);
            move |connection, _hello| {
                let connection = Arc::new(connection);
                register(&connections, &connection);
                let hub = Arc::clone(&hub);
                let spawned = std::thread::Builder::new()
                    .name("skprocess-queue-reader".into())
                    .spawn(move || Session::new(hub, connection, max_frame).run());
                // Without a thread the connection is dropped: its handle sees a clear
                // disconnection and its leases (none yet) are nothing to requeue.
                drop(spawned);
            }
        })?;
        Ok(Self {
            hub,
            connections,
            service,
        })
    }

    /// Where handles connect.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.service.endpoint()
    }

    /// The buffer, for calls in this process.
    pub(crate) fn hub(&self) -> &Hub<Vec<u8>> {
        &self.hub
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.hub.close();
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for connection in connections.iter().filter_map(Weak::upgrade) {
            connection.shutdown();
        }
    }
}

fn register(connections: &Mutex<Vec<Weak<Connection>>>, connection: &Arc<Connection>) {
    let mut connections = connections.lock().unwrap_or_else(PoisonError::into_inner);
    connections.retain(|weak| weak.strong_count() > 0);
    connections.push(Arc::downgrade(connection));
}

/// One connection's thread.
struct Session {
    hub: Arc<Hub<Vec<u8>>>,
    connection: Arc<Connection>,
    max_frame: u32,
    /// Registered at the first fetch: a connection that only puts holds no leases.
    reader: Option<ReaderId>,
    payload: Vec<u8>,
}

impl Session {
    fn new(hub: Arc<Hub<Vec<u8>>>, connection: Arc<Connection>, max_frame: u32) -> Self {
        Self {
            hub,
            connection,
            max_frame,
            reader: None,
            payload: Vec::new(),
        }
    }

    /// Serves requests until the connection ends or sends something malformed, then requeues
    /// whatever the reader still held.
    fn run(mut self) {
        let mut frames = FrameReader::new(self.max_frame);
        let connection = Arc::clone(&self.connection);
        let mut stream = connection.stream();
        while let Ok(Some(frame)) = frames.read_frame(&mut stream) {
            let Ok(request) = frame::decode::<Request>(frame.bytes()) else {
                break;
            };
            if self.handle(request).is_err() {
                break;
            }
        }
        if let Some(reader) = self.reader {
            self.hub.update(|buffer| buffer.remove_reader(reader));
        }
        self.connection.shutdown();
    }

    fn handle(&mut self, request: Request<'_>) -> Result<(), Error> {
        match request {
            Request::Put { message, wait_ms } => self.put(message, wait_ms),
            Request::PutMany { payload } => self.put_many(payload),
            Request::Fetch {
                ack_through,
                max,
                wait_ms,
            } => self.fetch(ack_through, max, wait_ms),
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
        Ok(reader)
    }

    fn put(&mut self, message: &[u8], wait_ms: Option<u64>) -> Result<(), Error> {
        let deadline = deadline_in(wait_ms);
        let connection = &self.connection;
        let reply = match self
            .hub
            .put(message.to_vec(), deadline, || peer_waits(connection))
        {
            Put::Accepted => Reply::Put { accepted: true },
            Put::Full(_) => Reply::Put { accepted: false },
            Put::Closed(_) => Reply::Closed,
        };
        Ok(self.connection.send(&reply)?)
    }

    /// Appends each message of `payload` in order, waiting for room; a payload cut short is a
    /// broken peer.
    fn put_many(&mut self, mut payload: &[u8]) -> Result<(), Error> {
        let connection = &self.connection;
        while !payload.is_empty() {
            let (message, rest) = split_message(payload).ok_or(Error::Disconnected)?;
            payload = rest;
            match self
                .hub
                .put(message.to_vec(), None, || peer_waits(connection))
            {
                Put::Accepted => {}
                // The peer hung up while the queue was full: what it sent is dropped with it
                // (its call did not return, so it was never promised).
                Put::Full(_) => return Err(Error::Disconnected),
                Put::Closed(_) => return Ok(self.connection.send(&Reply::Closed)?),
            }
        }
        Ok(self.connection.send(&Reply::Put { accepted: true })?)
    }

    fn fetch(&mut self, ack: Option<u64>, max: u32, wait_ms: Option<u64>) -> Result<(), Error> {
        let reader = self.reader()?;
        if let Some(through) = ack {
            self.hub.update(|buffer| buffer.ack(reader, through));
        }
        let deadline = deadline_in(wait_ms);
        let connection = &self.connection;
        let payload = &mut self.payload;
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
            || peer_waits(connection),
            |buffer, grant| {
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
        Ok(self.connection.send(&reply)?)
    }
}

fn deadline_in(wait_ms: Option<u64>) -> Option<Instant> {
    match wait_ms {
        None => None,
        // A wait too long for the clock is no deadline.
        Some(ms) => crate::deadline::after(Some(Duration::from_millis(ms))).or(None),
    }
}

/// Whether the peer is still waiting for an answer: it sends nothing while it waits, so a
/// readable socket means it hung up (or broke the protocol); either way, stop waiting for it.
fn peer_waits(connection: &Connection) -> bool {
    let source = [Source::from(connection.stream())];
    match sys::wait_readable(&source, Some(Duration::ZERO)) {
        Ok(ready) => !ready.iter().any(|r| r.readable || r.hung_up),
        Err(_) => false,
    }
}
