//! The socket backend: this process's one connection to a share's coordinator.
//!
//! Every handle of one share in one process goes through the same [`Client`] (held weakly in the
//! process's [`Clients`] cache), so the process's operations reach the coordinator in the order it issued them.
//! The connection opens on first use — in a child, after the handle arrived with the process
//! state; a restarted child is a new process and connects again — and is opened again on the
//! next use after it broke.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::share::{Reply, Request, Target, WholeOp};
use crate::share::link::Backend;
use crate::share::ring::{MAX_RECORD, Ring};
use crate::sys::shm;
use crate::transport::Connection;
use crate::transport::clients::Clients;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::frame::FrameReader;
use crate::transport::server;

/// The largest frame a share's connection carries.
pub(crate) const SHARE_MAX_FRAME: u32 = 64 * 1024 * 1024;

/// The clients of this process, by endpoint token, held weakly: a client lives as long as a
/// handle of its share does.
static CLIENTS: Mutex<Clients<Weak<Client>>> = Mutex::new(Clients::new());

/// The client of `endpoint` in this process, created on first need.
pub(crate) fn for_endpoint(endpoint: &Endpoint) -> Arc<Client> {
    CLIENTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .shared(endpoint, |endpoint| Client::new(endpoint.clone()))
}

/// One process's connection to one coordinator.
pub(crate) struct Client {
    endpoint: Endpoint,
    state: Mutex<ClientState>,
    /// A fire-and-forget write could not be sent; the next call reports it.
    lost_write: AtomicBool,
}

struct ClientState {
    connection: Option<Connection>,
    replies: FrameReader,
    /// The write ring of this connection, when one could be set up.
    ring: Option<Ring>,
    /// A write's encoded frame body, reused.
    body: Vec<u8>,
}

impl Client {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            state: Mutex::new(ClientState {
                connection: None,
                replies: FrameReader::new(SHARE_MAX_FRAME),
                ring: None,
                body: Vec::new(),
            }),
            lost_write: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the connection now (the creating process does, while its coordinator runs).
    pub(crate) fn connect(&self) -> Result<(), Error> {
        self.connect_if_needed(&mut self.lock())
    }

    /// Opens the connection if there is none: the hello, the ring request, then one call
    /// whose reply proves the coordinator serves this connection. Until then a write must not
    /// return: a read from another process that the coordinator answered before it knew of
    /// this connection would miss it. (The accept thread hands connections over
    /// asynchronously; the reply closes that gap.)
    fn connect_if_needed(&self, state: &mut ClientState) -> Result<(), Error> {
        if state.connection.is_some() {
            return Ok(());
        }
        state.ring = None;
        let connection =
            server::connect(&self.endpoint, SHARE_MAX_FRAME).map_err(gone_if_refused)?;
        state.connection = Some(connection);
        state.replies = FrameReader::new(SHARE_MAX_FRAME);
        let ring = state.connection.as_ref().and_then(attach_ring);
        let served = self.exchange(state, Target::Whole(WholeOp::LastError), &[]);
        match served {
            Ok(_) => {
                state.ring = ring;
                Ok(())
            }
            Err(error) => {
                state.connection = None;
                Err(error)
            }
        }
    }

    /// Sends a write through the ring when it fits. One that does not (larger than a ring
    /// record, or no ring) is a call: it returns once applied, as a write through the ring
    /// returns once published, so a read anywhere after it observes it; its failure is
    /// recorded by the coordinator, as a ring write's is, not returned.
    fn send_write(
        &self,
        state: &mut ClientState,
        target: Target,
        args: &[u8],
    ) -> Result<(), Error> {
        self.connect_if_needed(state)?;
        let ClientState {
            connection,
            ring,
            body,
            ..
        } = state;
        let connection = connection.as_ref().ok_or(Error::Gone {
            peer: crate::error::Peer::Share,
        })?;
        if let Some(ring) = ring.as_ref() {
            frame::encode_into(&Request::Write { target, args }, body).map_err(Error::from)?;
            if body.len() <= MAX_RECORD {
                let mut wake = false;
                wait_for(connection, ring, || match ring.push(body) {
                    Ok(asleep) => {
                        wake = asleep;
                        true
                    }
                    Err(()) => false,
                })?;
                if wake {
                    connection.send(&Request::Wake)?;
                }
                return Ok(());
            }
        }
        match self.exchange(state, target, args) {
            // Recorded as the last error, as a write through the ring is.
            Ok(_) | Err(Error::Shared { .. } | Error::Panicked { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn exchange(
        &self,
        state: &mut ClientState,
        target: Target,
        args: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let ClientState {
            connection,
            replies,
            ..
        } = state;
        let connection = connection.as_ref().ok_or(Error::Gone {
            peer: crate::error::Peer::Share,
        })?;
        connection.send(&Request::Call { target, args })?;
        let mut stream = connection.stream();
        match replies.read_message::<_, Reply>(&mut stream) {
            Ok(Some(Reply::Value(value))) => Ok(value),
            Ok(Some(Reply::Failed(message))) => Err(Error::Shared { message }),
            Ok(Some(Reply::Panicked { method, panic })) => Err(Error::shared_method(method, panic)),
            Ok(None) | Err(_) => Err(Error::Gone {
                peer: crate::error::Peer::Share,
            }),
        }
    }
}

impl Client {
    /// Stands for a lying peer: publishes `tail` in this connection's ring.
    #[cfg(all(test, target_os = "linux"))]
    pub(crate) fn publish_wild_tail(&self, tail: u64) {
        if let Some(ring) = self.lock().ring.as_ref() {
            ring.publish_tail(tail);
        }
    }
}

impl Backend for Client {
    fn write(&self, target: Target, args: &[u8]) -> Result<(), Error> {
        let mut state = self.lock();
        if self.lost_write.load(Ordering::SeqCst) {
            // The next call reports the loss; writes until then would arrive out of order
            // (and, with the coordinator gone, each would try to connect again).
            return Err(Error::Gone {
                peer: crate::error::Peer::Share,
            });
        }
        let sent = self.send_write(&mut state, target, args);
        if sent.is_err() {
            state.connection = None;
            self.lost_write.store(true, Ordering::SeqCst);
        }
        sent
    }

    fn call(&self, target: Target, args: &[u8]) -> Result<Vec<u8>, Error> {
        // The lock is held until the reply is in: a process has at most one call in flight per
        // share, which the coordinator's read barrier relies on.
        let mut state = self.lock();
        if self.lost_write.swap(false, Ordering::SeqCst) {
            // An earlier write was lost: the connection to the coordinator broke.
            return Err(Error::Gone {
                peer: crate::error::Peer::Share,
            });
        }
        let answered = self
            .connect_if_needed(&mut state)
            .and_then(|()| self.exchange(&mut state, target, args));
        if matches!(
            answered,
            Err(Error::Gone {
                peer: crate::error::Peer::Share
            })
        ) {
            state.connection = None;
        }
        answered
    }
}

/// Sets up a write ring for a fresh connection: creates the region and hands it to the
/// coordinator with the ring request. `None` (the socket carries every write) when there is no
/// shared memory to hand over (no `memfd` on this system, no memory to reserve) or sending
/// fails.
fn attach_ring(connection: &Connection) -> Option<Ring> {
    let (ring, fd) = Ring::create().ok()?;
    let request = frame::encode_frame(&Request::AttachRing, SHARE_MAX_FRAME).ok()?;
    shm::send_with_fd(connection.stream(), &request, &fd).ok()?;
    Some(ring)
}

/// How long a writer waiting for its ring sleeps at most between two looks, and so how soon
/// it notices that its coordinator is gone.
const MAX_PAUSE: Duration = Duration::from_millis(1);

/// Polls `ready` until it holds (the ring has room), sending a wake-up
/// whenever the coordinator sleeps; yields at first, then sleeps with a growing pause (up to
/// [`MAX_PAUSE`]: a stopped share drains only after `start`), looking before each sleep
/// whether the connection hung up: then the coordinator is gone, the ring will never drain,
/// and the write fails.
fn wait_for(
    connection: &Connection,
    ring: &Ring,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Error> {
    let mut pause = Duration::from_micros(20);
    for attempt in 0u32.. {
        if ready() {
            break;
        }
        if ring.consumer_sleeping() {
            connection.send(&Request::Wake)?;
        }
        if attempt < 64 {
            std::thread::yield_now();
        } else {
            // Nothing arrives on a writer's connection but the end of it: replies come only
            // to calls, and a call waits for its reply under the client's lock.
            if connection.stream().peer_closed() {
                return Err(Error::Gone {
                    peer: crate::error::Peer::Share,
                });
            }
            std::thread::sleep(pause);
            pause = pause.saturating_mul(2).min(MAX_PAUSE);
        }
    }
    Ok(())
}

/// A coordinator that cannot be reached (its socket is gone or refuses) is gone: the creating
/// process dropped its last handle or ended. Anything else keeps its meaning.
fn gone_if_refused(error: crate::transport::TransportError) -> Error {
    match Error::from(error) {
        Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Error::Gone {
                peer: crate::error::Peer::Share,
            }
        }
        other => other.with_peer(crate::error::Peer::Share),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::share::FieldOp;
    use crate::share::builtins::tests::Pair;
    use crate::transport::frame;

    /// Two clients stand for two processes: one writes through its ring, the other reads at
    /// once, thousands of times. Every read must see the write that returned before it.
    #[test]
    fn a_read_from_another_connection_sees_a_ring_write_that_returned_before_it() {
        let share = crate::Share::new(Pair::default()).unwrap();
        let endpoint: Endpoint = share.endpoint();
        let writer = Client::new(endpoint.clone());
        let reader = Client::new(endpoint);
        let set = Target::Field {
            index: 0,
            op: FieldOp::Set,
        };
        let get = Target::Field {
            index: 0,
            op: FieldOp::Get,
        };
        for i in 0..5_000u64 {
            writer.write(set, &frame::encode(&i).unwrap()).unwrap();
            let seen: u64 = frame::decode(&reader.call(get, &[]).unwrap()).unwrap();
            assert_eq!(seen, i);
        }
        // Rings need a sealed memfd: elsewhere every write is a call, and the reads above
        // still saw each.
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert!(writer.lock().ring.is_some(), "the writer had no ring");
        }
    }

    /// A fresh connection's first write returns only once the coordinator serves the
    /// connection: connections are handed over by the accept thread asynchronously, and a
    /// read answered before the coordinator knew of a connection would miss its writes.
    #[test]
    fn a_first_write_waits_until_the_coordinator_serves_the_connection() {
        use std::sync::atomic::AtomicBool;
        let share = crate::Share::new(Pair::default()).unwrap();
        let endpoint: Endpoint = share.endpoint();
        share.pause().unwrap();
        let returned = Arc::new(AtomicBool::new(false));
        let writer = std::thread::spawn({
            let returned = Arc::clone(&returned);
            move || {
                let client = Client::new(endpoint);
                let set = Target::Field {
                    index: 0,
                    op: FieldOp::Set,
                };
                client.write(set, &frame::encode(&7u64).unwrap()).unwrap();
                returned.store(true, Ordering::SeqCst);
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !returned.load(Ordering::SeqCst),
            "the write returned unserved"
        );
        share.resume().unwrap();
        writer.join().unwrap();
        assert_eq!(share.a.get().unwrap(), 7);
    }
}
