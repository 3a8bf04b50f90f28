//! The coordinator: a thread of the creating process that owns the value and applies every
//! operation on it, fed by the share's [`Server`].
//!
//! - **Reading** is the server's: one reader thread per connection
//!   ([`session`](super::session)) hands each call to the applying thread as a message through
//!   one bounded channel, and maps the connection's write ring when it comes. The applying
//!   thread is woken by messages only (a call, a ring handed over, a writer's wake-up), which
//!   a named-pipe backend can give as well as a socket one.
//! - **Applying** is this thread's alone, so operations on the value are serialized. Writes
//!   come through the rings, which it drains itself; before it applies any call it drains
//!   every ring, so a call observes every write whose call returned before the call was sent
//!   (a write returns once published in its ring). Writes that do not go through a ring are
//!   calls themselves, answered once applied.
//! - **Replies never block it**: it writes a reply only as far as the socket takes it at once
//!   and leaves the rest to the connection's writer thread ([`Outbox`]), which gives the peer
//!   the server's write timeout. A reader that stops (SIGSTOP, a debugger) during a large
//!   reply holds up no one else.
//!
//! `stop` drains every ring before the thread ends and hands the value back to the owner;
//! `start` continues with it. What arrives while stopped waits in the channel (then in the
//! sockets and rings) and is applied after the next `start`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Error;
use crate::protocol::share::{ReplyRef, Request, Target};
use crate::share::Shared;
use crate::share::client::SHARE_MAX_FRAME;
use crate::share::link::HeldWrites;
use crate::share::peer::{Refusal, apply};
use crate::share::ring::Ring;
use crate::share::session::{Message, Outbox, ShareSession};
use crate::transport::Connection;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::server::{MAX_CONNECTIONS, Peer, Server, ServerConfig};

/// Messages the channel to the applying thread holds before a reader thread waits.
const CHANNEL_BOUND: usize = 1024;

/// What the handles of the creating process can ask of the coordinator, whatever `T` is.
pub(crate) trait Control: Send + Sync {
    fn start(&self) -> Result<(), Error>;
    fn stop(&self) -> Result<(), Error>;
    fn is_running(&self) -> bool;
    fn running_flag(&self) -> Arc<AtomicBool>;
    fn held_writes(&self) -> HeldWrites;
    fn recorded_error(&self) -> Option<String>;
}

/// The owner of a share's coordinator: its server (accepting and reading connections), and
/// the applying thread or, while stopped, what the thread handed back.
pub(crate) struct Coordinator<T: Shared> {
    server: Option<Server>,
    endpoint: Endpoint,
    running: Arc<AtomicBool>,
    /// This process's writes made while stopped; `start` applies them first.
    held: HeldWrites,
    applier: SyncSender<Message>,
    slot: Mutex<Slot<T>>,
    last_error: Arc<Mutex<Option<String>>>,
}

enum Slot<T> {
    Running(JoinHandle<Core<T>>),
    Stopped(Core<T>),
    /// The thread was lost (it cannot panic, but a join error is not unwrapped).
    Lost,
}

impl<T: Shared> Coordinator<T> {
    /// Starts serving `value`.
    pub(crate) fn start_new(value: T) -> Result<Arc<Self>, Error> {
        Self::start_capped(value, MAX_CONNECTIONS)
    }

    /// Starts serving `value` to at most `max_connections` connections at once (one per
    /// process that uses the share); the next is refused with
    /// [`Error::TooManyConnections`].
    pub(crate) fn start_capped(value: T, max_connections: usize) -> Result<Arc<Self>, Error> {
        // A user method runs here, in the creating process: its panic keeps its location (the
        // hook notes it and calls the one that was there, so what is printed is unchanged).
        crate::panics::install_hook();
        let (applier, inbox) = mpsc::sync_channel(CHANNEL_BOUND);
        let last_error = Arc::new(Mutex::new(None));
        let mut config = ServerConfig::new("skprocess-share", SHARE_MAX_FRAME);
        config.max_connections = max_connections;
        config.regions = true;
        let server = Server::start(config, {
            let (applier, last_error) = (applier.clone(), Arc::clone(&last_error));
            let mut next_id = 0u64;
            move |_: &Peer| {
                next_id += 1;
                let last_error = Arc::clone(&last_error);
                Some(ShareSession::new(next_id, applier.clone(), last_error))
            }
        })?;
        let core = Core {
            value,
            inbox,
            rings: Vec::new(),
            reply: Vec::new(),
            scratch: Vec::new(),
            last_error: Arc::clone(&last_error),
        };
        let coordinator = Arc::new(Self {
            endpoint: server.endpoint().clone(),
            server: Some(server),
            running: Arc::new(AtomicBool::new(false)),
            held: HeldWrites::default(),
            applier,
            slot: Mutex::new(Slot::Stopped(core)),
            last_error,
        });
        coordinator.start()?;
        Ok(coordinator)
    }

    /// Where the coordinator's server listens.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
            running @ Slot::Running(_) => {
                *slot = running;
                return Ok(());
            }
            Slot::Lost => {
                return Err(Error::Gone {
                    peer: crate::error::Peer::Share,
                });
            }
        };
        let mut core = core;
        // Under this lock a writer of this process either held its write already (applied
        // here, before anything newer) or sees the flag set below and sends it.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        core.apply_held(held.drain(..));
        let thread = std::thread::Builder::new()
            .name("skprocess-share".to_owned())
            .spawn(move || core.serve())?;
        *slot = Slot::Running(thread);
        self.running.store(true, Ordering::SeqCst);
        drop(held);
        Ok(())
    }

    fn stop(&self) -> Result<(), Error> {
        let mut slot = self.lock();
        if !matches!(*slot, Slot::Running(_)) {
            return Ok(());
        }
        let Slot::Running(thread) = std::mem::replace(&mut *slot, Slot::Lost) else {
            return Ok(());
        };
        self.running.store(false, Ordering::SeqCst);
        // The thread holds the receiver until it returns, so this cannot fail while it runs.
        let _ = self.applier.send(Message::Stop);
        match thread.join() {
            Ok(core) => {
                *slot = Slot::Stopped(core);
                Ok(())
            }
            Err(_) => Err(Error::Gone {
                peer: crate::error::Peer::Share,
            }),
        }
    }

    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn running_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.running)
    }

    fn held_writes(&self) -> HeldWrites {
        Arc::clone(&self.held)
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
        // Stop accepting and end every connection; reader threads blocked on a full channel
        // wake when the core (the channel's receiver) is dropped after this.
        self.server.take();
    }
}

/// How many times the applying thread yields, checking the rings and the channel, before it
/// sleeps.
const SPINS_BEFORE_SLEEP: u32 = 64;

/// How long the applying thread sleeps at most while it has rings: a writer's wake-up makes
/// the bound unnecessary, but a lost wake-up must never stall a write for long.
const RING_SLEEP: Duration = Duration::from_millis(100);

/// A connection's write ring, as the applying thread holds it.
struct Attached {
    id: u64,
    ring: Ring,
    connection: Arc<Connection>,
}

/// What the applying thread owns.
struct Core<T> {
    value: T,
    inbox: Receiver<Message>,
    rings: Vec<Attached>,
    reply: Vec<u8>,
    /// A ring frame, copied out of shared memory before it is decoded.
    scratch: Vec<u8>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl<T: Shared> Core<T> {
    fn serve(mut self) -> Self {
        loop {
            let message = match self.inbox.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Empty) => {
                    self.drain_rings();
                    match self.wait() {
                        Some(message) => message,
                        None => continue,
                    }
                }
                // The owner holds a sender for as long as the thread may run.
                Err(TryRecvError::Disconnected) => Message::Stop,
            };
            match message {
                Message::Stop => {
                    self.drain_rings();
                    return self;
                }
                message => self.handle(message),
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Call { frame, outbox } => {
                // The read barrier: every write published before the call was sent.
                self.drain_rings();
                self.answer(&frame, &outbox);
            }
            Message::Attach {
                id,
                ring,
                connection,
            } => self.rings.push(Attached {
                id,
                ring,
                connection,
            }),
            Message::Ended { id } => {
                self.drain_rings();
                self.rings.retain(|attached| attached.id != id);
            }
            Message::Wake | Message::Stop => {}
        }
    }

    /// Waits for the next message: spins briefly while writers are busy, then announces in
    /// every ring that it sleeps, checks the rings once more (a writer that published before
    /// seeing the flag is caught here; one that publishes after it sends a wake-up) and
    /// blocks on the channel. `None` when the rings have records to drain.
    fn wait(&mut self) -> Option<Message> {
        if !self.rings.is_empty() {
            for _ in 0..SPINS_BEFORE_SLEEP {
                if self.rings_have_records() {
                    return None;
                }
                match self.inbox.try_recv() {
                    Ok(message) => return Some(message),
                    Err(TryRecvError::Empty) => std::thread::yield_now(),
                    Err(TryRecvError::Disconnected) => return Some(Message::Stop),
                }
            }
        }
        self.set_sleeping(true);
        let message = if self.rings_have_records() {
            None
        } else if self.rings.is_empty() {
            Some(self.inbox.recv().unwrap_or(Message::Stop))
        } else {
            match self.inbox.recv_timeout(RING_SLEEP) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Message::Stop),
            }
        };
        self.set_sleeping(false);
        message
    }

    fn set_sleeping(&self, sleeping: bool) {
        for attached in &self.rings {
            attached.ring.set_sleeping(sleeping);
        }
    }

    fn rings_have_records(&self) -> bool {
        self.rings
            .iter()
            .any(|attached| attached.ring.has_records())
    }

    /// Applies every published write in every ring. A ring that does not add up, or holds
    /// anything but writes, ends its connection (its next call fails) and is dropped.
    /// Applies the creating process's writes made while stopped, in order.
    fn apply_held(&mut self, writes: impl Iterator<Item = (Target, Vec<u8>)>) {
        for (target, args) in writes {
            if let Err(message) = apply(
                &mut self.value,
                target,
                &args,
                &mut self.reply,
                &self.last_error,
            ) {
                record(&self.last_error, message);
            }
        }
    }

    fn drain_rings(&mut self) {
        let Self {
            value,
            rings,
            reply,
            scratch,
            last_error,
            ..
        } = self;
        rings.retain(|attached| {
            let mut malformed = false;
            let drained =
                attached
                    .ring
                    .drain(scratch, |bytes| match frame::decode::<Request>(bytes) {
                        Ok(Request::Write { target, args }) => {
                            if let Err(message) = apply(value, target, args, reply, last_error) {
                                record(last_error, message);
                            }
                        }
                        _ => malformed = true,
                    });
            let keep = !malformed && drained.is_ok();
            if !keep {
                record(
                    last_error,
                    "a malformed write ring: its peer was dropped".to_owned(),
                );
                attached.connection.shutdown();
            }
            keep
        });
    }

    /// Applies a call and sends its reply (never waiting for the peer).
    fn answer(&mut self, frame: &[u8], outbox: &Outbox) {
        let Self {
            value,
            reply,
            last_error,
            ..
        } = self;
        let Ok(Request::Call { target, args }) = frame::decode::<Request>(frame) else {
            // The reader let only calls through: not reached.
            return outbox.abandon();
        };
        match apply(value, target, args, reply, last_error) {
            Ok(()) => outbox.reply(&ReplyRef::Value(reply)),
            Err(refusal) => {
                outbox.reply(&match &refusal {
                    Refusal::Failed(message) => ReplyRef::Failed(message),
                    Refusal::Panicked { method, panic } => ReplyRef::Panicked { method, panic },
                });
                record(last_error, refusal);
            }
        }
    }
}

fn record(last_error: &Mutex<Option<String>>, refusal: impl std::fmt::Display) {
    *last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(refusal.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::builtins::tests::Pair;
    use crate::share::client::Client;
    use std::time::Instant;

    /// One connection per process and share: past the cap, the next process's first use
    /// fails with a clear error, and the processes already served keep working.
    #[test]
    fn the_connection_past_the_cap_is_refused_clearly() {
        let coordinator = Coordinator::start_capped(Pair::default(), 2).unwrap();
        let endpoint = coordinator.endpoint().clone();
        let (first, second) = (Client::new(endpoint.clone()), Client::new(endpoint.clone()));
        first.connect().unwrap();
        second.connect().unwrap();
        let refused = Client::new(endpoint.clone()).connect();
        assert!(
            matches!(refused, Err(Error::TooManyConnections { limit: 2 })),
            "{refused:?}"
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("limit of 2 connections"), "{message}");
        drop(first);
        // The freed slot is taken again once the server has seen the hang-up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let third = Client::new(endpoint);
        while let Err(error) = third.connect() {
            assert!(Instant::now() < deadline, "the slot never freed: {error}");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(coordinator);
    }
}
