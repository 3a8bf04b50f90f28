//! An authenticated, framed connection: whole frames written under one lock from a reused
//! buffer, so threads never interleave and a steady sender does not allocate.

use std::io::{self, IoSlice, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;
use crate::transport::frame;

/// One end of a connection between a parent and a child.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: UnixStream,
    /// The frame being written; the lock makes each frame one uninterrupted write.
    outgoing: Mutex<Vec<u8>>,
    max_frame: u32,
}

impl Connection {
    /// Wraps a connected stream, in blocking mode whatever the listener's mode was (accepted
    /// streams inherit `O_NONBLOCK` on some systems).
    pub(crate) fn new(stream: UnixStream, max_frame: u32) -> io::Result<Self> {
        stream.set_nonblocking(false)?;
        Ok(Self {
            stream,
            outgoing: Mutex::new(Vec::new()),
            max_frame,
        })
    }

    /// The stream, for the connection's one reader.
    pub(crate) fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends one message as one frame.
    pub(crate) fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), Error> {
        let mut outgoing = self.lock();
        frame::encode_frame_into(message, self.max_frame, &mut outgoing)?;
        write_all(&self.stream, &outgoing)
    }

    /// Sends a frame made of `prefix` (an encoded message header such as a variant tag and a
    /// length) followed by `payload`, without copying the payload.
    pub(crate) fn send_with_payload(&self, prefix: &[u8], payload: &[u8]) -> Result<(), Error> {
        let len = prefix.len() + payload.len();
        frame::check_len(len, self.max_frame)?;
        let mut outgoing = self.lock();
        outgoing.clear();
        outgoing.extend_from_slice(&(len as u32).to_le_bytes());
        outgoing.extend_from_slice(prefix);
        write_vectored_all(&self.stream, &outgoing, payload)
    }

    /// Sends unless another thread holds the connection for longer than `patience`.
    pub(crate) fn send_within<T: Serialize + ?Sized>(
        &self,
        message: &T,
        patience: Duration,
    ) -> Result<(), Error> {
        let deadline = crate::deadline::after(Some(patience));
        loop {
            match self.outgoing.try_lock() {
                Ok(mut outgoing) => {
                    frame::encode_frame_into(message, self.max_frame, &mut outgoing)?;
                    return write_all(&self.stream, &outgoing);
                }
                Err(TryLockError::Poisoned(_)) => return Err(Error::Disconnected),
                Err(TryLockError::WouldBlock) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Disconnected);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Ends the connection both ways; a reader blocked on it wakes with end of stream.
    pub(crate) fn shutdown(&self) {
        // Already shut down or reset: nothing left to end.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn write_all(mut stream: &UnixStream, bytes: &[u8]) -> Result<(), Error> {
    stream.write_all(bytes).map_err(|_| Error::Disconnected)
}

/// Writes `head` then `tail` with as few system calls as the socket allows.
fn write_vectored_all(mut stream: &UnixStream, head: &[u8], tail: &[u8]) -> Result<(), Error> {
    let (mut head, mut tail) = (head, tail);
    while !head.is_empty() {
        let written = match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(tail)]) {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Error::Disconnected),
        };
        let from_head = written.min(head.len());
        head = &head[from_head..];
        tail = &tail[written - from_head..];
    }
    write_all(stream, tail)
}
