//! The point: the pipe end that moves into another process. It serializes as what connecting
//! needs (endpoint, nonce, type hash) and connects on its first use, wherever it is used.

use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::message::Message;
use crate::pipe::HANDSHAKE_TIMEOUT;
use crate::pipe::link::{Link, Sent};
use crate::pipe::{PipeError, TrySendError, type_hash};
use crate::protocol::pipe::{AnchorReply, PointHello, Refusal};
use crate::transport::Connection;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame::{self, FrameReader};
use crate::transport::server;

/// The end of a pipe that moves into another process: it sends `S` and receives `R` (for a
/// one-way pipe, `S` is [`OneWay`](super::OneWay) and it only receives).
///
/// Put it in a process's state (or send it in a message); it connects directly to the
/// anchor's process on its first call there, and a process restarted after a crash connects
/// it again. A point is one-to-one: when another live process already uses it, connecting
/// fails with [`PipeError::PointInUse`] — messages are never interleaved.
///
/// When the anchor is closed or dropped, or its process ends, the next call fails with
/// [`PipeError::Closed`], and so does every later one.
pub struct Point<S, R> {
    recipe: PointRecipe,
    state: Mutex<State>,
    _types: PhantomData<fn(S) -> R>,
}

/// What a point carries across processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PointRecipe {
    pub(super) endpoint: Endpoint,
    pub(super) nonce: u64,
    /// The anchor's type hash: what it sends, what it receives.
    pub(super) type_hash: u64,
    pub(super) max_frame: u32,
}

#[derive(Debug)]
enum State {
    Unconnected,
    Connected(Arc<Link>),
    Closed,
}

impl<S, R> Point<S, R> {
    /// What it connects with.
    #[cfg(test)]
    pub(super) fn recipe(&self) -> &PointRecipe {
        &self.recipe
    }

    pub(super) fn from_recipe(recipe: PointRecipe) -> Self {
        Self {
            recipe,
            state: Mutex::new(State::Unconnected),
            _types: PhantomData,
        }
    }

    /// Whether the point is connected right now (it connects on its first call).
    pub fn is_connected(&self) -> bool {
        matches!(*self.lock(), State::Connected(_))
    }

    /// Closes this end: the anchor's next call fails with [`PipeError::Closed`], and so do this
    /// point's. Closing twice does nothing.
    pub fn close(&self) {
        if let State::Connected(link) = std::mem::replace(&mut *self.lock(), State::Closed) {
            link.shutdown();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connected end, connecting on first use.
    fn link(&self) -> Result<Arc<Link>, PipeError> {
        let mut state = self.lock();
        match &*state {
            State::Connected(link) => return Ok(Arc::clone(link)),
            State::Closed => return Err(PipeError::Closed),
            State::Unconnected => {}
        }
        let link = match connect(&self.recipe, type_hash::<R, S>()) {
            Ok(link) => Arc::new(link),
            Err(PipeError::Closed) => {
                *state = State::Closed;
                return Err(PipeError::Closed);
            }
            // Refusals are not final: the process holding the point may end.
            Err(other) => return Err(other),
        };
        *state = State::Connected(Arc::clone(&link));
        Ok(link)
    }

    /// Marks the point closed when `result` says the anchor is gone.
    fn note<T>(&self, result: Result<T, PipeError>) -> Result<T, PipeError> {
        if matches!(result, Err(PipeError::Closed)) {
            *self.lock() = State::Closed;
        }
        result
    }
}

/// Connects to the anchor's process and does the handshake. `types` is the type hash as the
/// anchor sees it.
fn connect(recipe: &PointRecipe, types: u64) -> Result<Link, PipeError> {
    let endpoint = &recipe.endpoint;
    let connection =
        server::connect(endpoint, recipe.max_frame).map_err(|e| connect_error(e.into()))?;
    let mut frames = FrameReader::new(recipe.max_frame).keep_large();
    match read_with_timeout::<AnchorReply>(&connection, &mut frames) {
        Some(AnchorReply::Ready) => {}
        Some(AnchorReply::Refused(refusal)) => return Err(refused(refusal)),
        _ => return Err(PipeError::Closed),
    }
    let hello = PointHello {
        nonce: recipe.nonce,
        type_hash: types,
    };
    connection
        .send(&hello)
        .map_err(|e| connect_error(e.into()))?;
    match read_with_timeout::<AnchorReply>(&connection, &mut frames) {
        Some(AnchorReply::Accepted { pid }) => Ok(Link::new(Arc::new(connection), frames, pid)),
        Some(AnchorReply::Refused(refusal)) => Err(refused(refusal)),
        Some(AnchorReply::Ready) | None => Err(PipeError::Closed),
    }
}

/// A connection that cannot be made means the anchor (or its process) is gone.
fn connect_error(error: Error) -> PipeError {
    match error {
        // Not final: the anchor's handshakes free up.
        Error::TooManyConnections { .. } => PipeError::Io(io::Error::other(error.to_string())),
        Error::Io(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            PipeError::Io(e)
        }
        _ => PipeError::Closed,
    }
}

fn refused(refusal: Refusal) -> PipeError {
    match refusal {
        Refusal::InUse { pid } => PipeError::PointInUse { pid },
        Refusal::WrongPipe => PipeError::WrongPipe,
        Refusal::TypeMismatch => PipeError::TypeMismatch,
        Refusal::Closed => PipeError::Closed,
    }
}

impl<S: Message, R> Point<S, R> {
    /// Sends a message, waiting while the anchor's queue is full. Messages arrive in order.
    pub fn send(&self, message: S) -> Result<(), PipeError> {
        let link = self.link()?;
        self.note(link.send(&message))
    }

    /// Sends a message if the anchor's queue has room now; otherwise gives it back in
    /// [`TrySendError::Full`].
    pub fn try_send(&self, message: S) -> Result<(), TrySendError<S>> {
        self.send_timeout(message, Duration::ZERO)
    }

    /// Sends a message, waiting at most `timeout` for room in the anchor's queue; when it
    /// stays full the message comes back in [`TrySendError::Full`].
    pub fn send_timeout(&self, message: S, timeout: Duration) -> Result<(), TrySendError<S>> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.send(message).map_err(TrySendError::Failed);
        };
        let link = self.link()?;
        match self.note(link.send_before(&message, deadline))? {
            Sent::Yes => Ok(()),
            Sent::Full => Err(TrySendError::Full(message)),
        }
    }
}

impl<S, R: Message> Point<S, R> {
    /// Receives the next message, waiting as long as it takes; [`PipeError::Closed`] once the
    /// anchor is closed or its process has ended (after every message it sent was received).
    pub fn recv(&self) -> Result<R, PipeError> {
        let link = self.link()?;
        self.note(link.recv_before(None))?.ok_or(PipeError::Closed)
    }

    /// Receives the next message, waiting at most `timeout`; `Ok(None)` when none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<R>, PipeError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.recv().map(Some);
        };
        let link = self.link()?;
        self.note(link.recv_before(Some(deadline)))
    }

    /// Receives a message that has already arrived; `Ok(None)` when there is none.
    pub fn try_recv(&self) -> Result<Option<R>, PipeError> {
        self.recv_timeout(Duration::ZERO)
    }
}

impl<S, R> Serialize for Point<S, R> {
    /// Writes what connecting needs; never a connection.
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.recipe.serialize(serializer)
    }
}

impl<'de, S, R> Deserialize<'de> for Point<S, R> {
    /// Rebuilds an unconnected point; it connects on its first call.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PointRecipe::deserialize(deserializer).map(Self::from_recipe)
    }
}

impl<S, R> std::fmt::Debug for Point<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Point")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl<S, R> Drop for Point<S, R> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads one frame within the handshake timeout; `None` for silence, garbage or an end.
fn read_with_timeout<T: serde::de::DeserializeOwned>(
    connection: &Connection,
    frames: &mut FrameReader,
) -> Option<T> {
    let look = |frame: Option<frame::Frame<'_>>| frame::decode(frame?.bytes()).ok();
    connection
        .read_frame_within(frames, Some(HANDSHAKE_TIMEOUT), look)
        .ok()
        .flatten()
}
