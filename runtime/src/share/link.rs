//! What every proxy holds: a link to the share's backend.
//!
//! The backend is the one seam between the typed handles and where the value lives. Today
//! it is the socket client of a coordinator thread ([`client`](super::client)); a
//! Redis-backed share would implement the same trait, and the user's code would not change.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Timed};
use crate::protocol::share::Target;
use crate::transport::frame;

/// Where the operations of a share go.
pub(crate) trait Backend: Send + Sync {
    /// Sends a fire-and-forget write. When this returns `Ok`, every later read in any process
    /// observes it. Waiting for room (a full write ring) ends at `deadline`.
    fn write(&self, target: Target, args: &[u8], deadline: Option<Deadline>) -> Result<(), Error>;

    /// Applies an operation after every write that returned before this call and returns its
    /// encoded result; past `deadline`, gives up with [`Deadline::expired`]'s error, leaving
    /// the backend usable (a reply that comes later is never taken for another call's).
    fn call(
        &self,
        target: Target,
        args: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Error>;
}

/// When a call of a handle with a time limit gives up, and the limit it came from (for the
/// error that says so).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// The deadline `limit` from now; `None` (no deadline) for no limit or one too long for
    /// the clock, such as `Duration::MAX`.
    pub(crate) fn after(limit: Option<Duration>) -> Option<Self> {
        let limit = limit?;
        crate::deadline::after(Some(limit)).map(|at| Self { at, limit })
    }

    /// The instant, for the transport's waits.
    pub(crate) fn at(deadline: Option<Self>) -> Option<Instant> {
        deadline.map(|deadline| deadline.at)
    }

    /// Whether it has come.
    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// How long is left, zero once it passed.
    pub(crate) fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The error of a call that ran out of time.
    pub(crate) fn expired(&self) -> Error {
        Error::Timeout {
            limit: self.limit,
            of: Timed::Share,
        }
    }

    /// The error of a wait that ended at `deadline`. Only a wait with a deadline ends so;
    /// without one this is still a timeout (of no limit), never a panic.
    pub(crate) fn expired_of(deadline: Option<Self>) -> Error {
        match deadline {
            Some(deadline) => deadline.expired(),
            None => Error::Timeout {
                limit: Duration::ZERO,
                of: Timed::Share,
            },
        }
    }
}

thread_local! {
    /// Arguments are encoded here, so a steady writer does not allocate.
    static ARGS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A proxy's connection to its share: cheap to clone, shared by every proxy of the share in
/// this process.
#[derive(Clone)]
pub struct Link {
    backend: Arc<dyn Backend>,
    /// In the process that created the share: whether its coordinator runs, so a call on a
    /// stopped share fails at once instead of waiting for a `start()` that may never come.
    running: Option<Arc<AtomicBool>>,
    /// In the creating process: its writes made while the coordinator is stopped, applied by
    /// `start` before anything else. They cannot wait in a connection as another process's
    /// do: where there is no write ring, a write is a call, and a call made while stopped
    /// would wait for a `start` the same thread may be about to make.
    held: Option<HeldWrites>,
    /// How long each call and each wait for write room may take (`None`: no limit); see
    /// [`Share::with_timeout`](crate::Share::with_timeout).
    limit: Option<Duration>,
}

/// Writes of the creating process made while its coordinator is stopped, in order; `start`
/// takes this lock to apply them and sets the running flag before it lets go.
pub(crate) type HeldWrites = Arc<Mutex<Vec<(Target, Vec<u8>)>>>;

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        running: Option<Arc<AtomicBool>>,
        held: Option<HeldWrites>,
    ) -> Self {
        Self {
            backend,
            running,
            held,
            limit: None,
        }
    }

    /// The same link whose calls and writes give up after `limit` (`Duration::MAX`: never).
    pub(crate) fn with_limit(&self, limit: Duration) -> Self {
        Self {
            limit: Some(limit).filter(|limit| *limit != Duration::MAX),
            ..self.clone()
        }
    }

    /// The limit of this link's calls, `None` for none.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Sends a fire-and-forget write. A write that cannot be sent (the coordinator's process
    /// is gone, or, with a limit, its ring stayed full that long) is reported by the next
    /// call that waits.
    #[doc(hidden)]
    pub fn write<A: Serialize + ?Sized>(&self, target: Target, args: &A) {
        let _ = with_encoded(args, |bytes| {
            if self.hold(target, bytes) {
                return Ok(());
            }
            self.backend
                .write(target, bytes, Deadline::after(self.limit))
        });
    }

    /// Keeps a write of the creating process while its coordinator is stopped; false when it
    /// runs (or this is another process).
    fn hold(&self, target: Target, bytes: &[u8]) -> bool {
        let (Some(running), Some(held)) = (&self.running, &self.held) else {
            return false;
        };
        if running.load(Ordering::SeqCst) {
            return false;
        }
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked again under the lock `start` holds while it applies and sets the flag.
        if running.load(Ordering::SeqCst) {
            return false;
        }
        held.push((target, bytes.to_vec()));
        true
    }

    /// Applies an operation and waits for its result, at most for the link's limit.
    #[doc(hidden)]
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        target: Target,
        args: &A,
    ) -> Result<R, Error> {
        self.call_within(target, args, self.limit)
    }

    /// Applies an operation and waits for its result at most `limit` (`None`: no limit).
    pub(crate) fn call_within<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        target: Target,
        args: &A,
        limit: Option<Duration>,
    ) -> Result<R, Error> {
        if self
            .running
            .as_ref()
            .is_some_and(|running| !running.load(Ordering::SeqCst))
        {
            return Err(Error::SharePaused);
        }
        let deadline = Deadline::after(limit);
        let reply = with_encoded(args, |bytes| self.backend.call(target, bytes, deadline))
            .map_err(|e| e.with_peer(crate::error::Peer::Share))?;
        frame::decode_owned(&reply).map_err(Error::from)
    }
}

/// Runs `send` with `args` encoded in this thread's reused buffer.
fn with_encoded<A: Serialize + ?Sized, T>(
    args: &A,
    send: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    ARGS.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            frame::encode_into(args, &mut buffer).map_err(Error::from)?;
            send(&buffer)
        }
        // Only reachable if encoding the arguments itself used a share; use a fresh buffer.
        Err(_) => send(&frame::encode(args).map_err(Error::from)?),
    })
}
