//! The socket backend: this process's one connection to a share's coordinator.
//!
//! Every handle of one share in one process goes through the same [`Client`] (held weakly in the
//! process's [`Clients`] cache), so the process's operations reach the coordinator in the order it issued them.
//! The connection opens on first use — in a child, after the handle arrived with the process
//! state; a restarted child is a new process and connects again — and is opened again on the
//! next use after it broke.
//!
//! A handle with a time limit ([`Share::with_timeout`](crate::Share::with_timeout)) passes a
//! [`Deadline`] down: every wait here — for the client's lock, the connection and its
//! handshake, the room in the ring, the reply — ends at it. A call that ran out of time drops
//! the connection rather than leave its reply to come later: the next call connects again, so
//! a late reply is never read as another call's, and the connection keeps the protocol's one
//! call in flight (the coordinator's read barrier and its reply queue count on it). Writes
//! published in the ring before are not lost with the connection: the coordinator drains a
//! ring once more when its connection ends, and before any call it answers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::share::{Reply, Request, Target, WholeOp};
use crate::share::link::{Backend, Deadline};
use crate::share::ring::{MAX_RECORD, Ring};
use crate::sys::shm;
use crate::transport::clients::Clients;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::frame::FrameReader;
use crate::transport::server;
use crate::transport::{Connection, TransportError};

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
}

struct ClientState {
    connection: Option<Connection>,
    replies: FrameReader,
    /// The write ring of this connection, when one could be set up.
    ring: Option<Ring>,
    /// A write's encoded frame body, reused.
    body: Vec<u8>,
    /// Why a fire-and-forget write could not be sent (the coordinator is gone, or its ring
    /// stayed full past a handle's limit); the next call reports it.
    lost_write: Option<Error>,
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
                lost_write: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client's lock, waiting for another thread's call no later than `deadline`.
    fn lock_before(
        &self,
        deadline: Option<Deadline>,
    ) -> Result<MutexGuard<'_, ClientState>, Error> {
        crate::deadline::lock_before(&self.state, Deadline::at(deadline))
            .ok_or_else(|| Deadline::expired_of(deadline))
    }

    /// Opens the connection now (the creating process does, while its coordinator runs).
    pub(crate) fn connect(&self) -> Result<(), Error> {
        self.connect_if_needed(&mut self.lock(), None)
    }

    /// Opens the connection if there is none: the hello, the ring request, then one call
    /// whose reply proves the coordinator serves this connection. Until then a write must not
    /// return: a read from another process that the coordinator answered before it knew of
    /// this connection would miss it. (The accept thread hands connections over
    /// asynchronously; the reply closes that gap.)
    fn connect_if_needed(
        &self,
        state: &mut ClientState,
        deadline: Option<Deadline>,
    ) -> Result<(), Error> {
        if state.connection.is_some() {
            return Ok(());
        }
        state.ring = None;
        let connection =
            server::connect_before(&self.endpoint, SHARE_MAX_FRAME, Deadline::at(deadline))
                .map_err(|error| match deadline {
                    Some(deadline) if deadline.passed() => deadline.expired(),
                    _ => gone_if_refused(error),
                })?;
        state.connection = Some(connection);
        state.replies = FrameReader::new(SHARE_MAX_FRAME);
        let ring = state.connection.as_ref().and_then(attach_ring);
        if let Err(error) = self.exchange(state, Target::Whole(WholeOp::LastError), &[], deadline) {
            state.connection = None;
            return Err(error);
        }
        state.ring = ring;
        Ok(())
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
        deadline: Option<Deadline>,
    ) -> Result<(), Error> {
        self.connect_if_needed(state, deadline)?;
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
                wait_for(connection, ring, deadline, || match ring.push(body) {
                    Ok(asleep) => {
                        wake = asleep;
                        true
                    }
                    Err(()) => false,
                })?;
                if wake {
                    match send_before(connection, &Request::Wake, deadline) {
                        // The write is published: a wake-up that cannot go out in time is
                        // not needed, as the coordinator looks at its rings at least every
                        // 100 ms while it has any.
                        Ok(()) | Err(Error::Timeout { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
                return Ok(());
            }
        }
        match self.exchange(state, target, args, deadline) {
            // Recorded as the last error, as a write through the ring is.
            Ok(_) | Err(Error::Shared { .. } | Error::Panicked { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Sends a call and reads its reply, by `deadline`. Any failure but the operation's own
    /// drops the connection: a call that ran out of time may still be answered, and that
    /// reply must not be read as the next call's.
    fn exchange(
        &self,
        state: &mut ClientState,
        target: Target,
        args: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Error> {
        let answered = Self::send_and_read(state, target, args, deadline);
        if matches!(answered, Err(Error::Gone { .. } | Error::Timeout { .. })) {
            state.connection = None;
            state.ring = None;
        }
        answered
    }

    fn send_and_read(
        state: &mut ClientState,
        target: Target,
        args: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Error> {
        let ClientState {
            connection,
            replies,
            ..
        } = state;
        let connection = connection.as_ref().ok_or(Error::Gone {
            peer: crate::error::Peer::Share,
        })?;
        send_before(connection, &Request::Call { target, args }, deadline)?;
        let reply = match deadline {
            // The plain read: a call without a limit sets no socket timeout.
            None => replies.read_message::<_, Reply>(&mut connection.stream()),
            Some(deadline) => {
                let left = deadline.left();
                if left.is_zero() {
                    return Err(deadline.expired());
                }
                let read = connection.read_frame_within(replies, Some(left), |frame| {
                    frame.map(|frame| frame::decode::<Reply>(frame.bytes()))
                });
                match read {
                    Ok(Some(reply)) => reply.map(Some),
                    Ok(None) => Ok(None),
                    Err(error) if is_timeout(&error) || deadline.passed() => {
                        return Err(deadline.expired());
                    }
                    Err(_) => Ok(None),
                }
            }
        };
        match reply {
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
    #[cfg(all(test, any(target_os = "linux", windows)))]
    pub(crate) fn publish_wild_tail(&self, tail: u64) {
        if let Some(ring) = self.lock().ring.as_ref() {
            ring.publish_tail(tail);
        }
    }
}

impl Backend for Client {
    fn write(&self, target: Target, args: &[u8], deadline: Option<Deadline>) -> Result<(), Error> {
        let mut state = self.lock_before(deadline)?;
        if state.lost_write.is_some() {
            // The next call reports the loss; writes until then would arrive out of order
            // (and, with the coordinator gone, each would try to connect again).
            return Err(Error::Gone {
                peer: crate::error::Peer::Share,
            });
        }
        let sent = self.send_write(&mut state, target, args, deadline);
        if let Err(error) = &sent {
            // A write given up while waiting for ring room was never published; the ring's
            // earlier writes are drained when the dropped connection ends.
            state.connection = None;
            state.ring = None;
            state.lost_write = Some(match error {
                Error::Timeout { limit, of } => Error::Timeout {
                    limit: *limit,
                    of: *of,
                },
                _ => Error::Gone {
                    peer: crate::error::Peer::Share,
                },
            });
        }
        sent
    }

    fn call(
        &self,
        target: Target,
        args: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Error> {
        // The lock is held until the reply is in: a process has at most one call in flight per
        // share, which the coordinator's read barrier relies on.
        let mut state = self.lock_before(deadline)?;
        if let Some(lost) = state.lost_write.take() {
            // An earlier write was lost: the connection to the coordinator broke, or the
            // write found no room in time.
            return Err(lost);
        }
        self.connect_if_needed(&mut state, deadline)?;
        self.exchange(&mut state, target, args, deadline)
    }
}

/// Sends `message` whole by `deadline` (`None`: as long as the coordinator needs to take it).
fn send_before(
    connection: &Connection,
    message: &Request<'_>,
    deadline: Option<Deadline>,
) -> Result<(), Error> {
    let at = Deadline::at(deadline);
    let sent = connection
        .send_message_before(message, at)
        .and_then(|begun| Ok(begun && connection.flush_before(at)?));
    match (sent, deadline) {
        (Ok(true), _) => Ok(()),
        (Ok(false), Some(deadline)) => Err(deadline.expired()),
        (Ok(false), None) | (Err(_), _) => Err(Error::Gone {
            peer: crate::error::Peer::Share,
        }),
    }
}

/// Whether a read failed only because its time ran out.
fn is_timeout(error: &TransportError) -> bool {
    matches!(error, TransportError::Wire(wire) if wire.is_timeout())
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
/// [`MAX_PAUSE`]: a paused share drains only after `resume`), looking before each sleep
/// whether the connection hung up: then the coordinator is gone, the ring will never drain,
/// and the write fails. Past `deadline` the write is given up ([`Deadline::expired`]).
fn wait_for(
    connection: &Connection,
    ring: &Ring,
    deadline: Option<Deadline>,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Error> {
    let mut pause = Duration::from_micros(20);
    for attempt in 0u32.. {
        if ready() {
            break;
        }
        if let Some(deadline) = deadline
            && deadline.passed()
        {
            return Err(deadline.expired());
        }
        if ring.consumer_sleeping() {
            send_before(connection, &Request::Wake, deadline)?;
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
            let pause_now = deadline.map_or(pause, |deadline| pause.min(deadline.left()));
            std::thread::sleep(pause_now);
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
            writer
                .write(set, &frame::encode(&i).unwrap(), None)
                .unwrap();
            let seen: u64 = frame::decode(&reader.call(get, &[], None).unwrap()).unwrap();
            assert_eq!(seen, i);
        }
        // Rings need shared memory (a sealed memfd, a Windows section): elsewhere every write
        // is a call, and the reads above still saw each.
        if cfg!(any(target_os = "linux", target_os = "android", windows)) {
            assert!(writer.lock().ring.is_some(), "the writer had no ring");
        }
    }

    /// A fresh connection's first write returns only once the coordinator serves the
    /// connection: connections are handed over by the accept thread asynchronously, and a
    /// read answered before the coordinator knew of a connection would miss its writes.
    #[test]
    fn a_first_write_waits_until_the_coordinator_serves_the_connection() {
        use std::sync::atomic::{AtomicBool, Ordering};
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
                client
                    .write(set, &frame::encode(&7u64).unwrap(), None)
                    .unwrap();
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
