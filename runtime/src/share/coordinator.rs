//! The coordinator: a thread of the creating process that owns the value and serves every
//! connection to it.
//!
//! One loop reads all connections without blocking (`recv` with `MSG_DONTWAIT`, each until the
//! kernel has nothing more) and applies each connection's writes in arrival order. A call (a
//! read, or a write that returns a value) is held until the loop has drained every connection
//! once more *after* the call arrived: a write that returned before the caller sent its call
//! was in its kernel buffer by then, so it is applied before the call is answered. A call is
//! always the last frame of its connection until answered (the client waits for the reply),
//! so holding it holds nothing else back.
//!
//! `stop` drains every connection and applies what it read before the thread ends, and hands
//! the value and the connections back to the owner; `start` continues with them. Writes sent
//! while stopped wait in the sockets and are applied after the next `start`.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::protocol::share::{ReplyRef, Request};
use crate::share::Shared;
use crate::share::client::SHARE_MAX_FRAME;
use crate::share::peer::{Inbound, apply};
use crate::share::ring::Ring;
use crate::transport::Connection;
use crate::transport::frame;
use crate::transport::service::{Endpoint, Service};

/// What the handles of the creating process can ask of the coordinator, whatever `T` is.
pub(crate) trait Control: Send + Sync {
    fn start(&self) -> Result<(), Error>;
    fn stop(&self) -> Result<(), Error>;
    fn is_running(&self) -> bool;
    fn running_flag(&self) -> Arc<AtomicBool>;
    fn endpoint(&self) -> &Endpoint;
    fn recorded_error(&self) -> Option<String>;
}

/// The owner of a share's coordinator: its service (accepting connections), and the serving
/// thread or, while stopped, what the thread handed back.
pub(crate) struct Coordinator<T: Shared> {
    service: Option<Service>,
    endpoint: Endpoint,
    running: Arc<AtomicBool>,
    wake: Arc<UnixStream>,
    slot: Mutex<Slot<T>>,
    last_error: Arc<Mutex<Option<String>>>,
}

enum Slot<T> {
    Running {
        thread: JoinHandle<Core<T>>,
        stop: Arc<AtomicBool>,
    },
    Stopped(Core<T>),
    /// The thread was lost (it cannot panic, but a join error is not unwrapped).
    Lost,
}

impl<T: Shared> Coordinator<T> {
    /// Starts serving `value`.
    pub(crate) fn start_new(value: T) -> Result<Arc<Self>, Error> {
        let (sender, incoming) = mpsc::channel();
        let (wake_reader, wake_writer) = UnixStream::pair()?;
        wake_reader.set_nonblocking(true)?;
        wake_writer.set_nonblocking(true)?;
        let wake = Arc::new(wake_writer);
        let wake_on_accept = Arc::clone(&wake);
        let service = Service::start("skprocess-share-accept", SHARE_MAX_FRAME, None, {
            move |connection, _hello| {
                if sender.send(connection).is_ok() {
                    wake_up(&wake_on_accept);
                }
            }
        })?;
        let last_error = Arc::new(Mutex::new(None));
        let core = Core {
            value,
            peers: Vec::new(),
            incoming,
            wake_reader,
            reply: Vec::new(),
            scratch: Vec::new(),
            last_error: Arc::clone(&last_error),
        };
        let coordinator = Arc::new(Self {
            endpoint: service.endpoint().clone(),
            service: Some(service),
            running: Arc::new(AtomicBool::new(false)),
            wake,
            slot: Mutex::new(Slot::Stopped(core)),
            last_error,
        });
        coordinator.start()?;
        Ok(coordinator)
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Shared> Control for Coordinator<T> {
    fn start(&self) -> Result<(), Error> {
        let mut slot = self.lock();
        let core = match std::mem::replace(&mut *slot, Slot::Lost) {
            Slot::Stopped(core) => core,
            running @ Slot::Running { .. } => {
                *slot = running;
                return Ok(());
            }
            Slot::Lost => return Err(Error::Shared("the share's coordinator was lost".into())),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("skprocess-share".to_owned())
            .spawn({
                let stop = Arc::clone(&stop);
                move || core.serve(&stop)
            })?;
        *slot = Slot::Running { thread, stop };
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn stop(&self) -> Result<(), Error> {
        let mut slot = self.lock();
        if !matches!(*slot, Slot::Running { .. }) {
            return Ok(());
        }
        let Slot::Running { thread, stop } = std::mem::replace(&mut *slot, Slot::Lost) else {
            return Ok(());
        };
        self.running.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        wake_up(&self.wake);
        match thread.join() {
            Ok(core) => {
                *slot = Slot::Stopped(core);
                Ok(())
            }
            Err(_) => Err(Error::Shared("the share's coordinator was lost".into())),
        }
    }

    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn running_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.running)
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn recorded_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<T: Shared> Drop for Coordinator<T> {
    fn drop(&mut self) {
        let _ = self.stop();
        // Stop accepting; connections already open are dropped with the core.
        self.service.take();
    }
}

/// How many times the coordinator yields, checking the rings, before it sleeps.
const SPINS_BEFORE_SLEEP: u32 = 64;

fn wake_up(wake: &UnixStream) {
    // A full wake socket already holds a wake-up.
    let _ = (&*wake).write(&[1]);
}

/// One connection to the coordinator.
struct Peer {
    connection: Connection,
    inbound: Inbound,
    /// The process's write ring, once it asked for it to be mapped.
    ring: Option<Ring>,
    /// A call was read and waits for the next full drain before it is answered.
    call_waiting: bool,
    closed: bool,
}

/// What the serving thread owns.
struct Core<T> {
    value: T,
    peers: Vec<Peer>,
    incoming: Receiver<Connection>,
    wake_reader: UnixStream,
    reply: Vec<u8>,
    /// A ring frame, copied out of shared memory before it is decoded.
    scratch: Vec<u8>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl<T: Shared> Core<T> {
    fn serve(mut self, stop: &AtomicBool) -> Self {
        loop {
            // Calls read before this round's drain; the drain below is their barrier.
            let waiting: Vec<usize> = (0..self.peers.len())
                .filter(|&i| self.peers[i].call_waiting)
                .collect();
            if stop.load(Ordering::SeqCst) {
                self.finish();
                return self;
            }
            if waiting.is_empty() {
                self.sleep_until_work();
            } else {
                self.wait_readable(Some(0));
            }
            self.take_wake_ups();
            self.accept_new();
            self.drain_all();
            self.drain_rings();
            for i in waiting {
                self.answer(i);
                self.advance(i);
            }
            self.peers.retain(|peer| !peer.closed);
        }
    }

    /// Applies everything the connections hold, answering the calls among it.
    fn finish(&mut self) {
        self.accept_new();
        self.drain_all();
        self.drain_rings();
        let waiting: Vec<usize> = (0..self.peers.len())
            .filter(|&i| self.peers[i].call_waiting)
            .collect();
        if !waiting.is_empty() {
            self.drain_all();
            self.drain_rings();
            for i in waiting {
                self.answer(i);
                self.advance(i);
            }
        }
        self.peers.retain(|peer| !peer.closed);
    }

    /// Waits for work: spins briefly while writers are busy, then announces in every ring
    /// that it sleeps, checks the rings once more (a writer that published before seeing the
    /// flag is caught here; one that publishes after it rings the doorbell) and blocks.
    fn sleep_until_work(&self) {
        let spins = if self.peers.iter().any(|peer| peer.ring.is_some()) {
            SPINS_BEFORE_SLEEP
        } else {
            0
        };
        for _ in 0..spins {
            if self.rings_have_records() {
                return;
            }
            std::thread::yield_now();
        }
        let rings = || self.peers.iter().filter_map(|peer| peer.ring.as_ref());
        rings().for_each(|ring| ring.set_sleeping(true));
        if !self.rings_have_records() {
            // With rings, a bounded sleep as well: the doorbell makes it unnecessary, but a
            // lost wake-up must never stall a write for long.
            let has_rings = rings().next().is_some();
            self.wait_readable(has_rings.then_some(100));
        }
        rings().for_each(|ring| ring.set_sleeping(false));
    }

    fn rings_have_records(&self) -> bool {
        self.peers
            .iter()
            .filter_map(|peer| peer.ring.as_ref())
            .any(Ring::has_records)
    }

    /// Applies every published write in every ring.
    fn drain_rings(&mut self) {
        let Self {
            value,
            peers,
            reply,
            scratch,
            last_error,
            ..
        } = self;
        for ring in peers.iter().filter_map(|peer| peer.ring.as_ref()) {
            ring.drain(scratch, |bytes| match frame::decode::<Request>(bytes) {
                Ok(Request::Write { target, args }) => {
                    if let Err(message) = apply(value, target, args, reply, last_error) {
                        record(last_error, message);
                    }
                }
                _ => record(last_error, "a malformed frame in a write ring".to_owned()),
            });
        }
    }

    /// Sleeps until a connection or the wake socket is readable, for at most `millis` (`None`:
    /// without limit).
    fn wait_readable(&self, millis: Option<i32>) {
        let mut fds = vec![libc::pollfd {
            fd: self.wake_reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(
            self.peers
                .iter()
                .filter(|peer| !peer.closed && !peer.call_waiting)
                .map(|peer| libc::pollfd {
                    fd: peer.connection.stream().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        let timeout = millis.unwrap_or(-1);
        // SAFETY: `fds` is a valid array of pollfd of the given length, alive for the call.
        // An error (EINTR) only means the loop goes round once more.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    }

    fn take_wake_ups(&self) {
        let mut sink = [0u8; 64];
        while matches!(io::Read::read(&mut &self.wake_reader, &mut sink), Ok(n) if n > 0) {}
    }

    fn accept_new(&mut self) {
        while let Ok(connection) = self.incoming.try_recv() {
            self.peers.push(Peer {
                connection,
                inbound: Inbound::new(SHARE_MAX_FRAME),
                ring: None,
                call_waiting: false,
                closed: false,
            });
        }
    }

    /// Reads every connection until the kernel has nothing more, applying writes as they
    /// come; stops at a connection's call.
    fn drain_all(&mut self) {
        for i in 0..self.peers.len() {
            while !self.peers[i].closed && !self.peers[i].call_waiting {
                match receive(&mut self.peers[i]) {
                    Received::Bytes => self.advance(i),
                    Received::Nothing => break,
                    Received::Closed => self.peers[i].closed = true,
                }
            }
        }
    }

    /// Applies the writes buffered for peer `i`, up to its next call.
    fn advance(&mut self, i: usize) {
        let Self {
            value,
            peers,
            reply,
            last_error,
            ..
        } = self;
        let peer = &mut peers[i];
        while !peer.call_waiting && !peer.closed {
            let range = match peer.inbound.next_frame() {
                Ok(Some(range)) => range,
                Ok(None) => return,
                Err(_) => {
                    peer.closed = true;
                    return;
                }
            };
            match frame::decode::<Request>(peer.inbound.bytes(range.clone())) {
                Ok(Request::Write { target, args }) => {
                    if let Err(message) = apply(value, target, args, reply, last_error) {
                        record(last_error, message);
                    }
                }
                Ok(Request::Call { .. }) => {
                    // Put it back to be read again once the barrier has passed.
                    peer.inbound.unread(range);
                    peer.call_waiting = true;
                }
                Ok(Request::AttachRing { path }) => {
                    let path = std::path::Path::new(path);
                    match Ring::open(path) {
                        Ok(ring) => {
                            peer.ring = Some(ring);
                            // Mapped: the name is no longer needed. A path that was refused
                            // is never removed, whatever it names.
                            let _ = std::fs::remove_file(path);
                        }
                        Err(error) => {
                            // The process's ring writes cannot be read: end its connection,
                            // so its next call fails instead of missing them.
                            record(last_error, format!("cannot map a write ring: {error}"));
                            peer.closed = true;
                        }
                    }
                }
                Ok(Request::Wake) => {}
                Err(_) => peer.closed = true,
            }
        }
    }

    /// Answers peer `i`'s waiting call.
    fn answer(&mut self, i: usize) {
        let Self {
            value,
            peers,
            reply,
            last_error,
            ..
        } = self;
        let peer = &mut peers[i];
        peer.call_waiting = false;
        let range = match peer.inbound.next_frame() {
            Ok(Some(range)) => range,
            _ => {
                peer.closed = true;
                return;
            }
        };
        let Ok(Request::Call { target, args }) =
            frame::decode::<Request>(peer.inbound.bytes(range))
        else {
            peer.closed = true;
            return;
        };
        let sent = match apply(value, target, args, reply, last_error) {
            Ok(()) => peer.connection.send(&ReplyRef::Value(reply)),
            Err(message) => {
                let sent = peer.connection.send(&ReplyRef::Failed(&message));
                record(last_error, message);
                sent
            }
        };
        if sent.is_err() {
            peer.closed = true;
        }
    }
}

fn record(last_error: &Mutex<Option<String>>, message: String) {
    *last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
}

enum Received {
    Bytes,
    Nothing,
    Closed,
}

/// One non-blocking read into the peer's buffer.
fn receive(peer: &mut Peer) -> Received {
    let fd = peer.connection.stream().as_raw_fd();
    let spare = peer.inbound.spare();
    loop {
        // SAFETY: `spare` is a valid writable buffer of the given length for the call.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match usize::try_from(n) {
            Ok(0) => return Received::Closed,
            Ok(n) => {
                peer.inbound.filled(n);
                return Received::Bytes;
            }
            Err(_) => match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Received::Nothing,
                _ => return Received::Closed,
            },
        }
    }
}
