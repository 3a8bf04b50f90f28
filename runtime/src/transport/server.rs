//! One server behind every long-lived endpoint (a queue's broker, a process queue's owner, a
//! pipe's anchor, the log collector): how a connection is admitted, who reads it, and how a
//! reply is written.
//!
//! - **Admission, off the serving path**: the accept thread ([`endpoint`](super::endpoint))
//!   judges hellos
//!   concurrently, each with its own deadline, so a silent or trickling peer never delays
//!   another. A proven peer is answered with one admission frame before anything else:
//!   welcome, or — past [`ServerConfig::max_connections`] live connections — a refusal that the
//!   client's [`connect`] turns into [`TransportError::TooManyConnections`]. Nothing past the cap gets a
//!   thread.
//! - **Serving**: one blocking reader thread per admitted connection reads frames with the
//!   runtime's one [`FrameReader`] and hands each to the feature's [`Session`]; the thread ends
//!   when the peer hangs up ([`Session::on_end`] learns of it) or the session says so. This is
//!   the model a Windows named-pipe backend provides too (no `poll` needed to serve).
//! - **Writes with a deadline**: [`Peer::send`] gives a peer
//!   [`ServerConfig::write_timeout`] to take a reply; a peer that does not (stopped, frozen,
//!   under a debugger) is dropped, so it holds its own thread and slot only that long and never
//!   anyone else's.
//! - **A session may detach** its connection after a handshake ([`Flow::Detach`]): the pipe's
//!   anchor then reads and writes it on its callers' threads.
//! - **A connection may hand over one shared-memory region** when the server allows it
//!   ([`ServerConfig::regions`]; on Unix a descriptor sent with the bytes): the reader takes
//!   it with the bytes and keeps it for the session ([`Peer::take_region`]); a second one
//!   ends the connection. The share's write rings come so.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::shm::RegionFd;
use crate::transport::connection::Connection;
use crate::transport::endpoint::{Accepting, Endpoint};
use crate::transport::error::TransportError;
use crate::transport::frame::{self, FrameReader};
use crate::transport::region::{FrameSource, RegionReader};
use crate::transport::rendezvous::PeerPid;

/// Default cap on live connections per server: far above what one queue, pipe or collector
/// needs (a connection per thread or child), low enough that a runaway client cannot make the
/// server start thousands of threads.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Default time a peer has to take a reply before it is dropped.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for its admission once its hello is sent.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest admission frame.
const ADMISSION_MAX: u32 = 64;

/// How a server runs. Start from [`ServerConfig::new`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub(crate) struct ServerConfig {
    /// Name of the accept thread; reader threads get it with `-conn` appended.
    pub(crate) name: String,
    /// Largest frame body read or written.
    pub(crate) max_frame: u32,
    /// Where the socket's private directory goes (default: an abstract name on Linux, the
    /// temp directory elsewhere).
    pub(crate) socket_dir: Option<PathBuf>,
    /// Most connections served at once; the next is refused with
    /// [`TransportError::TooManyConnections`]. Default: [`MAX_CONNECTIONS`].
    pub(crate) max_connections: usize,
    /// How long a peer has to take a reply before it is dropped. Default: [`WRITE_TIMEOUT`].
    pub(crate) write_timeout: Duration,
    /// A connection that sends no frame this long after its admission is dropped (a
    /// handshake that stalls). Default: none.
    pub(crate) first_frame_timeout: Option<Duration>,
    /// Whether a connection may hand over one shared-memory region with its bytes (see
    /// [`Peer::take_region`]). Default: no (a descriptor sent anyway is discarded unread).
    pub(crate) regions: bool,
}

impl ServerConfig {
    /// The defaults, with the accept thread's name and the frame limit.
    pub(crate) fn new(name: &str, max_frame: u32) -> Self {
        Self {
            name: name.to_owned(),
            max_frame,
            socket_dir: None,
            max_connections: MAX_CONNECTIONS,
            write_timeout: WRITE_TIMEOUT,
            first_frame_timeout: None,
            regions: false,
        }
    }
}

/// The server's first frame to a proven peer.
#[derive(Debug, Serialize, Deserialize)]
enum Admission {
    Welcome,
    Full { limit: u32 },
}

/// What the reader thread does after a frame.
pub(crate) enum Flow {
    /// Read the next frame.
    Continue,
    /// End the connection (the session's [`on_end`](Session::on_end) runs).
    Close,
    /// Stop reading and hand the reader, with whatever it buffered past the frame, to the
    /// closure, which now owns the connection (through [`Peer::connection`]); it no longer
    /// counts against the cap.
    Detach(Box<dyn FnOnce(FrameReader) + Send>),
}

/// What a feature does with one connection's frames, on the connection's reader thread.
pub(crate) trait Session: Send + 'static {
    /// One frame from the peer.
    fn on_frame(&mut self, peer: &Peer, frame: &[u8]) -> Flow;

    /// The connection ended: the peer hung up, sent something unreadable, or the session
    /// closed it. Runs once, last (not after a detach).
    fn on_end(&mut self, _peer: &Peer) {}
}

/// One admitted connection, as a session sees it.
#[derive(Debug)]
pub(crate) struct Peer {
    connection: Arc<Connection>,
    pid: PeerPid,
    write_timeout: Duration,
    /// When the connection is dropped unless a frame came first.
    first_frame_by: Option<Instant>,
    got_frame: AtomicBool,
    /// The region the peer handed over, until the session takes it.
    region: Mutex<Option<RegionFd>>,
}

impl Peer {
    /// The peer's process id as the kernel gives it; `None` where the OS does not say.
    pub(crate) fn pid(&self) -> PeerPid {
        self.pid
    }

    /// The connection, for a session that detaches it.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Sends one frame, giving the peer the server's write timeout to take it; a peer that
    /// does not is dropped ([`TransportError::Disconnected`]), so a serving thread never waits on a
    /// stopped peer for longer than that.
    pub(crate) fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), TransportError> {
        let deadline = Instant::now().checked_add(self.write_timeout);
        match self.connection.send_message_before(message, deadline) {
            Ok(true) if !self.connection.has_unsent() => Ok(()),
            Ok(_) => {
                tracing::debug!(
                    pid = self.pid,
                    "a peer took no reply for {:?}; it was dropped",
                    self.write_timeout
                );
                self.shutdown();
                Err(TransportError::Disconnected)
            }
            Err(error) => {
                if matches!(error, TransportError::Disconnected) {
                    self.shutdown();
                }
                Err(error)
            }
        }
    }

    /// The shared-memory region the peer handed over with the bytes read so far, if any (only
    /// on a server that allows [`regions`](ServerConfig::regions)); taken once.
    pub(crate) fn take_region(&self) -> Option<RegionFd> {
        self.region
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the peer sent something or hung up, without reading or waiting: a session that
    /// waits on behalf of a peer that sends nothing while it waits stops when this holds.
    pub(crate) fn input_pending(&self) -> bool {
        self.connection.input_pending()
    }

    /// Ends the connection; its reader thread wakes and ends.
    pub(crate) fn shutdown(&self) {
        self.connection.shutdown();
    }
}

/// What the accept thread and the reader threads share.
#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    live: Mutex<Vec<Arc<Peer>>>,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Vec<Arc<Peer>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, peer: &Arc<Peer>) {
        self.live().retain(|p| !Arc::ptr_eq(p, peer));
    }

    /// Drops connections whose first frame is overdue.
    fn sweep(&self) {
        let now = Instant::now();
        for peer in self.live().iter() {
            let overdue = peer.first_frame_by.is_some_and(|by| now >= by);
            if overdue && !peer.got_frame.load(Ordering::Acquire) {
                peer.shutdown();
            }
        }
    }
}

/// A running server: its accept thread and the connections it serves. Dropping it stops
/// accepting and ends every connection it still serves (detached ones live on).
pub(crate) struct Server {
    accepting: Option<Accepting>,
    endpoint: Endpoint,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the server's socket and starts accepting. `open` runs on the accept thread for
    /// each admitted peer and gives its session (`None` drops the peer).
    pub(crate) fn start<S: Session>(
        config: ServerConfig,
        mut open: impl FnMut(&Peer) -> Option<S> + Send + 'static,
    ) -> Result<Self, TransportError> {
        let shared = Arc::new(Shared {
            config,
            live: Mutex::default(),
        });
        let config = &shared.config;
        let on_connection = {
            let shared = Arc::clone(&shared);
            move |connection, pid| admit(&shared, &mut open, connection, pid)
        };
        let on_wake = {
            let shared = Arc::clone(&shared);
            move || shared.sweep()
        };
        let accepting = Accepting::start(
            &config.name,
            config.max_frame,
            config.socket_dir.as_deref(),
            on_connection,
            on_wake,
        )?;
        Ok(Self {
            endpoint: accepting.endpoint().clone(),
            accepting: Some(accepting),
            shared,
        })
    }

    /// What a client needs to connect (with [`connect`]).
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connections served now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.shared.live().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stop admitting first, so no connection is added after the sweep below.
        drop(self.accepting.take());
        for peer in self.shared.live().iter() {
            peer.shutdown();
        }
    }
}

/// Runs on the accept thread for each proven peer: refuses it past the cap, else welcomes it
/// and starts its reader thread. Only this thread adds connections, so the count it checks
/// cannot grow before it adds one.
fn admit<S: Session>(
    shared: &Arc<Shared>,
    open: &mut impl FnMut(&Peer) -> Option<S>,
    connection: Connection,
    pid: PeerPid,
) {
    let config = &shared.config;
    let now = Instant::now();
    // A fresh connection's buffer is empty: these short writes never wait.
    let deadline = now.checked_add(config.write_timeout);
    if shared.live().len() >= config.max_connections {
        let limit = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
        tracing::debug!(
            "{}: {limit} connections already served; one was refused",
            config.name
        );
        let _ = connection.send_message_before(&Admission::Full { limit }, deadline);
        return;
    }
    if !matches!(
        connection.send_message_before(&Admission::Welcome, deadline),
        Ok(true)
    ) {
        return;
    }
    let peer = Arc::new(Peer {
        connection: Arc::new(connection),
        pid,
        write_timeout: config.write_timeout,
        first_frame_by: config.first_frame_timeout.and_then(|t| now.checked_add(t)),
        got_frame: AtomicBool::new(false),
        region: Mutex::new(None),
    });
    let Some(session) = open(&peer) else {
        peer.shutdown();
        return;
    };
    shared.live().push(Arc::clone(&peer));
    let spawned = std::thread::Builder::new()
        .name(format!("{}-conn", config.name))
        .spawn({
            let (shared, peer) = (Arc::clone(shared), Arc::clone(&peer));
            move || serve(&shared, &peer, session)
        });
    if spawned.is_err() {
        tracing::debug!(
            "{}: no thread for a connection; it was dropped",
            config.name
        );
        shared.forget(&peer);
        peer.shutdown();
    }
}

/// One connection's reader thread.
fn serve<S: Session>(shared: &Shared, peer: &Arc<Peer>, session: S) {
    let stream = peer.connection.stream();
    if shared.config.regions {
        let reader = RegionReader::new(stream, &peer.region);
        read_frames(shared, peer, session, reader);
    } else {
        read_frames(shared, peer, session, stream);
    }
}

/// Reads frames into the session until the connection ends or the session stops it.
fn read_frames<S: Session>(
    shared: &Shared,
    peer: &Arc<Peer>,
    mut session: S,
    mut stream: impl FrameSource,
) {
    let mut frames = FrameReader::new(shared.config.max_frame);
    loop {
        let flow = match frames.read_frame(&mut stream) {
            Ok(Some(frame)) => match stream.take_record(frame.bytes()) {
                Ok(true) => Flow::Continue,
                Ok(false) => {
                    peer.got_frame.store(true, Ordering::Release);
                    session.on_frame(peer, frame.bytes())
                }
                Err(_) => Flow::Close,
            },
            // The peer hung up, or sent what is not a frame.
            Ok(None) | Err(_) => Flow::Close,
        };
        match flow {
            Flow::Continue => {}
            Flow::Close => break,
            Flow::Detach(take) => {
                shared.forget(peer);
                take(frames);
                return;
            }
        }
    }
    session.on_end(peer);
    peer.shutdown();
    shared.forget(peer);
}

/// Connects to a server and waits for its admission: [`TransportError::TooManyConnections`]
/// when it
/// serves its limit already.
pub(crate) fn connect(endpoint: &Endpoint, max_frame: u32) -> Result<Connection, TransportError> {
    connect_before(endpoint, max_frame, None)
}

/// Like [`connect`], waiting for the admission no later than `deadline` either (a caller
/// with its own time limit, such as a share handle's). The wait ends with
/// [`TransportError::Disconnected`] as a refusal does; the caller tells them apart by its
/// deadline.
pub(crate) fn connect_before(
    endpoint: &Endpoint,
    max_frame: u32,
    deadline: Option<Instant>,
) -> Result<Connection, TransportError> {
    let connection = endpoint.connect(max_frame)?;
    let wait = deadline.map_or(ADMISSION_TIMEOUT, |deadline| {
        deadline
            .saturating_duration_since(Instant::now())
            .min(ADMISSION_TIMEOUT)
    });
    // Exact: what the server sends after the admission belongs to the connection's reader.
    let mut frames = FrameReader::new(ADMISSION_MAX).exact();
    let admission = connection.read_frame_within(&mut frames, Some(wait), |frame| {
        frame.and_then(|frame| frame::decode::<Admission>(frame.bytes()).ok())
    });
    match admission {
        Ok(Some(Admission::Welcome)) => Ok(connection),
        Ok(Some(Admission::Full { limit })) => Err(TransportError::TooManyConnections { limit }),
        Ok(None) | Err(_) => Err(TransportError::Disconnected),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
