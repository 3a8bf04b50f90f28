//! The coordinator: a thread of the creating process that owns the value and serves every
//! connection to it.
//!
//! One loop reads all connections without blocking (each until the kernel has nothing more) and applies each connection's writes in arrival order. A call (a
//! read, or a write that returns a value) is held until the loop has drained every connection
//! once more *after* the call arrived: a write that returned before the caller sent its call
//! was in its kernel buffer by then, so it is applied before the call is answered. A call is
//! always the last frame of its connection until answered (the client waits for the reply),
//! so holding it holds nothing else back.
//!
//! Replies never block the loop either ([`session`](super::session)): a reader that stops
//! (SIGSTOP, a debugger) during a large reply holds up no one else.
//!
//! `stop` drains every connection and applies what it read before the thread ends, and hands
//! the value and the connections back to the owner; `start` continues with them. Writes sent
//! while stopped wait in the sockets and are applied after the next `start`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::protocol::share::{ReplyRef, Request};
use crate::share::Shared;
use crate::share::client::SHARE_MAX_FRAME;
use crate::share::peer::apply;
use crate::share::ring::Ring;
use crate::share::session::{Read, Session};
use crate::sys::Stream;
use crate::sys::shm::{self, Watch};
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
    wake: Arc<Stream>,
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
        let (bell, ringer) = Stream::pair()?;
        bell.set_nonblocking(true)?;
        ringer.set_nonblocking(true)?;
        let wake = Arc::new(ringer);
        let wake_on_accept = Arc::clone(&wake);
        let service = Service::start("skprocess-share-accept", SHARE_MAX_FRAME, None, {
            move |connection, _hello| {
                if sender.send(connection).is_ok() {
                    ring(&wake_on_accept);
                }
            }
        })?;
        let last_error = Arc::new(Mutex::new(None));
        let core = Core {
            value,
            peers: Vec::new(),
            incoming,
            bell,
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
        ring(&self.wake);
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

/// How long the coordinator sleeps at most while it has rings: the doorbell makes the bound
/// unnecessary, but a lost wake-up must never stall a write for long.
const RING_SLEEP: Duration = Duration::from_millis(100);

/// What the serving thread owns.
struct Core<T> {
    value: T,
    peers: Vec<Session>,
    incoming: Receiver<Connection>,
    /// Readable when something woke the loop: a new connection, `stop`.
    bell: Stream,
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
                self.wait_readable(Some(Duration::ZERO));
            }
            clear(&self.bell);
            self.peers.iter_mut().for_each(Session::flush);
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
            let has_rings = rings().next().is_some();
            self.wait_readable(has_rings.then_some(RING_SLEEP));
        }
        rings().for_each(|ring| ring.set_sleeping(false));
    }

    fn rings_have_records(&self) -> bool {
        self.peers
            .iter()
            .filter_map(|peer| peer.ring.as_ref())
            .any(Ring::has_records)
    }

    /// Applies every published write in every ring. A ring that does not add up, or holds
    /// anything but writes, ends its peer's connection: its next call fails.
    fn drain_rings(&mut self) {
        let Self {
            value,
            peers,
            reply,
            scratch,
            last_error,
            ..
        } = self;
        // A closed peer's ring is drained too: its last writes returned before it hung up.
        for peer in peers.iter_mut() {
            let Some(ring) = peer.ring.as_ref() else {
                continue;
            };
            let mut malformed = false;
            let drained = ring.drain(scratch, |bytes| match frame::decode::<Request>(bytes) {
                Ok(Request::Write { target, args }) => {
                    if let Err(message) = apply(value, target, args, reply, last_error) {
                        record(last_error, message);
                    }
                }
                _ => malformed = true,
            });
            if malformed || drained.is_err() {
                record(
                    last_error,
                    "a malformed write ring: its peer was dropped".to_owned(),
                );
                peer.ring = None;
                peer.closed = true;
            }
        }
    }

    /// Sleeps until a connection or the bell is readable, or a waiting reply can go on, for
    /// at most `timeout` (`None`: without limit).
    fn wait_readable(&self, timeout: Option<Duration>) {
        let mut watches: Vec<Watch<'_>> = vec![Watch::read(&self.bell)];
        watches.extend(self.peers.iter().filter_map(Session::watch));
        // A failed wait only means the loop goes round once more.
        let _ = shm::wait_any(&watches, timeout);
    }

    fn accept_new(&mut self) {
        while let Ok(connection) = self.incoming.try_recv() {
            self.peers.push(Session::new(connection));
        }
    }

    /// Reads every connection until the kernel has nothing more, applying writes as they
    /// come; stops at a connection's call.
    fn drain_all(&mut self) {
        for i in 0..self.peers.len() {
            while self.peers[i].readable() {
                match self.peers[i].receive() {
                    Read::Bytes => self.advance(i),
                    Read::Nothing | Read::Closed => break,
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
                Ok(Request::AttachRing) => {
                    // The region came with the request's bytes, or there is none.
                    let attached = match (peer.ring.is_some(), peer.take_ring_fd()) {
                        (false, Some(fd)) => Ring::attach(fd),
                        _ => Err(std::io::Error::other("no region came with the request")),
                    };
                    match attached {
                        Ok(ring) => peer.ring = Some(ring),
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
        match apply(value, target, args, reply, last_error) {
            Ok(()) => peer.reply(&ReplyRef::Value(reply)),
            Err(message) => {
                peer.reply(&ReplyRef::Failed(&message));
                record(last_error, message);
            }
        }
    }
}

/// Wakes the loop; a bell that already rings stays rung (its socket is full).
fn ring(bell: &Stream) {
    let _ = std::io::Write::write(&mut &*bell, &[1]);
}

/// Takes every ring so far.
fn clear(bell: &Stream) {
    let mut sink = [0u8; 64];
    while matches!(std::io::Read::read(&mut &*bell, &mut sink), Ok(n) if n > 0) {}
}

fn record(last_error: &Mutex<Option<String>>, message: String) {
    *last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
}
