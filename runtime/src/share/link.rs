//! What every proxy holds: a link to the share's backend.
//!
//! The backend is the one seam between the typed handles and where the value lives. Today
//! it is the socket client of a coordinator thread ([`client`](super::client)); a
//! Redis-backed share would implement the same trait, and the user's code would not change.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(backend: Arc<dyn Backend>, running: Option<Arc<AtomicBool>>) -> Self {
        Self { backend, running }
    }

    /// Sends a fire-and-forget write. A write that cannot be sent (the coordinator's process
    /// is gone) is reported by the next call that waits.
    #[doc(hidden)]
    pub fn write<A: Serialize + ?Sized>(&self, target: Target, args: &A) {
        let _ = with_encoded(args, |bytes| self.backend.write(target, bytes));
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
            return Err(Error::SharePaused);
        }
        let reply = with_encoded(args, |bytes| self.backend.call(target, bytes))
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
