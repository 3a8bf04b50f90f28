//! One connected pipe end: the connection, and its reader. Both ends (anchor and point) use
//! it once the handshake is done.
//!
//! A pipe carries nothing but the user's messages, so the caller's thread reads and writes the
//! socket itself: there are no control frames that a full queue could hold up, and a round
//! trip costs no thread hand-offs. The bound on each direction is the receiver's socket
//! buffer: a sender whose peer does not read waits in `send` (backpressure), and the
//! non-blocking and timed variants give the message back instead.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::pipe::PipeError;
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader, WireError};
use crate::transport::role::readable;

/// A pipe end after a successful handshake.
#[derive(Debug)]
pub(crate) struct Link {
    connection: Arc<Connection>,
    /// Held by every send, so a frame streamed straight to the socket never interleaves with
    /// another; it keeps the scratch buffer of streamed frames.
    sending: Mutex<Vec<u8>>,
    /// Largest frame body either end accepts.
    max_frame: u32,
    reader: Mutex<Reader>,
    /// The process at the other end.
    peer_pid: u32,
}

#[derive(Debug)]
struct Reader {
    frames: FrameReader,
    /// The socket's current receive timeout, so it is changed only when a call needs another.
    timeout: Option<Duration>,
}

/// Messages at least this large are streamed to the socket by [`Link::send`].
const STREAM_FROM: usize = 64 * 1024;

/// What a timed send did.
pub(crate) enum Sent {
    Yes,
    /// The peer's queue stayed full until the deadline; nothing was written.
    Full,
}

impl Link {
    /// Wraps a connection whose handshake is done; `frames` keeps what the handshake's reads
    /// already buffered.
    pub(crate) fn new(connection: Arc<Connection>, frames: FrameReader, peer_pid: u32) -> Self {
        Self {
            connection,
            sending: Mutex::new(Vec::new()),
            max_frame: frames.max(),
            reader: Mutex::new(Reader {
                frames,
                timeout: None,
            }),
            peer_pid,
        }
    }

    pub(crate) fn peer_pid(&self) -> u32 {
        self.peer_pid
    }

    /// Sends one message, waiting as long as the peer's queue is full. A large message is
    /// written straight from the value (its byte strings are not copied into a frame buffer).
    pub(crate) fn send<T: Serialize>(&self, message: &T) -> Result<(), PipeError> {
        let len = frame::encoded_len(message).map_err(|e| PipeError::Malformed(e.to_string()))?;
        let mut scratch = self.sending.lock().unwrap_or_else(PoisonError::into_inner);
        // A tail left by a timed send must go first, and the connection sends it.
        if len < STREAM_FROM || self.connection.has_unsent() {
            return self
                .connection
                .send(message)
                .map_err(|e| PipeError::from_send(e.into()));
        }
        let mut stream = self.connection.stream();
        let max = self.max_frame;
        match frame::write_frame_streaming(message, len, max, &mut stream, &mut scratch) {
            Ok(()) => Ok(()),
            Err(WireError::TooLarge { len, max }) => Err(PipeError::TooLarge {
                size: len,
                limit: u64::from(max),
            }),
            Err(error) => {
                // Part of a frame may be out: the connection cannot carry another one.
                self.connection.shutdown();
                Err(match error {
                    WireError::Io(_) => PipeError::Closed,
                    other => PipeError::Malformed(other.to_string()),
                })
            }
        }
    }

    /// Sends one message unless the peer's queue stays full until `deadline`.
    pub(crate) fn send_before<T: Serialize>(
        &self,
        message: &T,
        deadline: Instant,
    ) -> Result<Sent, PipeError> {
        // Another sender may be blocked on a full peer: wait for it no later than the deadline.
        let Some(_sending) = self.lock_sending_before(deadline) else {
            return Ok(Sent::Full);
        };
        match self.connection.send_before(message, Some(deadline)) {
            Ok(true) => Ok(Sent::Yes),
            Ok(false) => Ok(Sent::Full),
            Err(error) => Err(PipeError::from_send(error.into())),
        }
    }

    /// Receives one message; `Ok(None)` when `deadline` passed first (`None`: no deadline).
    pub(crate) fn recv_before<T: DeserializeOwned>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<T>, PipeError> {
        let mut reader = self.lock_reader();
        loop {
            let timeout = match deadline {
                None => None,
                // A whole frame already buffered is returned without touching the socket.
                Some(_) if reader.frames.has_buffered_frame() => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Bytes to read, or the end.
                    if !readable(self.connection.stream(), Some(left)).map_err(PipeError::Io)? {
                        return Ok(None);
                    }
                    // Readable, but the rest of a frame may still be on its way.
                    Some(left.max(Duration::from_millis(1)))
                }
            };
            self.set_timeout(&mut reader, timeout)?;
            let mut stream = self.connection.stream();
            match reader.frames.read_frame(&mut stream) {
                Ok(Some(body)) => {
                    return frame::decode(body.bytes())
                        .map(Some)
                        .map_err(|e| PipeError::Malformed(e.to_string()));
                }
                Ok(None) => return Err(PipeError::Closed),
                Err(e) if e.is_timeout() => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
                Err(WireError::Io(_) | WireError::Truncated { .. }) => {
                    return Err(PipeError::Closed);
                }
                Err(e) => return Err(PipeError::Malformed(e.to_string())),
            }
        }
    }

    /// Ends the connection both ways: the peer's next call sees the end, and a call of ours
    /// blocked on it wakes.
    pub(crate) fn shutdown(&self) {
        self.connection.shutdown();
    }

    /// Whether the peer has hung up (its process ended or it closed its end), without reading.
    pub(crate) fn peer_hung_up(&self) -> bool {
        hung_up(&self.connection)
    }

    fn set_timeout(&self, reader: &mut Reader, timeout: Option<Duration>) -> Result<(), PipeError> {
        if reader.timeout != timeout {
            self.connection
                .stream()
                .set_read_timeout(timeout)
                .map_err(PipeError::Io)?;
            reader.timeout = timeout;
        }
        Ok(())
    }

    /// Takes the send lock, waiting no later than `deadline`.
    fn lock_sending_before(&self, deadline: Instant) -> Option<MutexGuard<'_, Vec<u8>>> {
        loop {
            match self.sending.try_lock() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn lock_reader(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PipeError {
    fn from_send(error: Error) -> Self {
        match error {
            Error::TooLarge { size, limit } => PipeError::TooLarge { size, limit },
            Error::Wire(WireError::Malformed(message)) => PipeError::Malformed(message),
            _ => PipeError::Closed,
        }
    }
}

/// Whether the peer has hung up, checked without waiting.
fn hung_up(connection: &Connection) -> bool {
    connection.stream().peer_closed()
}
