//! What every proxy holds: a link to the share's backend.
//!
//! The backend is the one seam between the typed handles and where the value lives. Today
//! it is the socket client of a coordinator thread ([`client`](super::client)); a
//! Redis-backed share would implement the same trait, and the user's code would not change.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::protocol::share::Target;
use crate::transport::frame;

/// Where the operations of a share go.
pub(crate) trait Backend: Send + Sync {
    /// Sends a fire-and-forget write. When this returns `Ok`, every later read in any process
    /// observes it.
    fn write(&self, target: Target, args: &[u8]) -> Result<(), Error>;

    /// Applies an operation after every write that returned before this call and returns its
    /// encoded result.
    fn call(&self, target: Target, args: &[u8]) -> Result<Vec<u8>, Error>;
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
        }
    }

    /// Sends a fire-and-forget write. A write that cannot be sent (the coordinator's process
    /// is gone) is reported by the next call that waits.
    #[doc(hidden)]
    pub fn write<A: Serialize + ?Sized>(&self, target: Target, args: &A) {
        let _ = with_encoded(args, |bytes| {
            if self.hold(target, bytes) {
                return Ok(());
            }
            self.backend.write(target, bytes)
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

    /// Applies an operation and waits for its result.
    #[doc(hidden)]
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        target: Target,
        args: &A,
    ) -> Result<R, Error> {
        if self
            .running
            .as_ref()
            .is_some_and(|running| !running.load(Ordering::SeqCst))
        {
            return Err(Error::ShareStopped);
        }
        let reply = with_encoded(args, |bytes| self.backend.call(target, bytes))?;
        frame::decode_owned(&reply).map_err(Error::Wire)
    }
}

/// Runs `send` with `args` encoded in this thread's reused buffer.
fn with_encoded<A: Serialize + ?Sized, T>(
    args: &A,
    send: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    ARGS.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            frame::encode_into(args, &mut buffer).map_err(Error::Wire)?;
            send(&buffer)
        }
        // Only reachable if encoding the arguments itself used a share; use a fresh buffer.
        Err(_) => send(&frame::encode(args).map_err(Error::Wire)?),
    })
}
