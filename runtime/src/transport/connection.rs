//! An authenticated, framed connection: whole frames written under one lock from a reused
//! buffer, so threads never interleave and a steady sender does not allocate.

use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sys::Stream;
use crate::transport::error::TransportError as Error;
use crate::transport::frame::{self, Frame, FrameReader};
use crate::transport::role::readable;

/// Payloads up to this size are copied into the frame buffer and go out in one plain write.
const COPIED_PAYLOAD: usize = 512;

/// What the sending lock guards.
#[derive(Debug, Default)]
struct Outgoing {
    /// The frame being encoded, reused.
    frame: Vec<u8>,
    /// The rest of a frame whose sender's deadline passed while the peer was not reading: it
    /// goes out before anything else, so frames are never cut or interleaved.
    unsent: Vec<u8>,
}

/// One end of a connection between a parent and a child.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: Stream,
    /// The lock makes each frame one uninterrupted write.
    outgoing: Mutex<Outgoing>,
    /// Whether `Outgoing::unsent` holds anything, readable without the lock.
    has_unsent: AtomicBool,
    max_frame: u32,
}

impl Connection {
    /// Wraps a connected stream, in blocking mode whatever the listener's mode was (accepted
    /// streams inherit `O_NONBLOCK` on some systems).
    pub(crate) fn new(stream: Stream, max_frame: u32) -> io::Result<Self> {
        stream.set_nonblocking(false)?;
        Ok(Self {
            stream,
            outgoing: Mutex::default(),
            has_unsent: AtomicBool::new(false),
            max_frame,
        })
    }

    /// The stream, for the connection's one reader.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Sends one message as one frame, waiting as long as the peer needs to take it.
    pub(crate) fn send<T: Serialize + ?Sized>(&self, message: &T) -> Result<(), Error> {
        let mut outgoing = self.lock();
        self.finish_unsent(&mut outgoing, None)?;
        frame::encode_frame_into(message, self.max_frame, &mut outgoing.frame)?;
        write_all(&self.stream, &outgoing.frame)
    }

    /// Sends a frame made of `prefix` (an encoded message header such as a variant tag and a
    /// length) followed by `payload`, without copying the payload.
    pub(crate) fn send_with_payload(&self, prefix: &[u8], payload: &[u8]) -> Result<(), Error> {
        self.send_with_payload_before(prefix, payload, None)
            .map(drop)
    }

    /// Sends a frame of `prefix` and `payload` unless the connection stays busy until
    /// `deadline` — held by another sender, or full because the peer does not read (a stopped
    /// process): then nothing is written and `Ok(false)` comes back. Once the frame's first
    /// byte is out the frame is committed: what the socket cannot take by the deadline is
    /// kept and sent before anything else, and `Ok(true)` comes back.
    pub(crate) fn send_with_payload_before(
        &self,
        prefix: &[u8],
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<bool, Error> {
        let len = prefix.len() + payload.len();
        frame::check_len(len, self.max_frame)?;
        let Some(mut outgoing) = self.lock_before(deadline) else {
            return Ok(false);
        };
        if !self.finish_unsent(&mut outgoing, deadline)? {
            return Ok(false);
        }
        let Outgoing { frame, unsent } = &mut *outgoing;
        frame.clear();
        frame.extend_from_slice(&(len as u32).to_le_bytes());
        frame.extend_from_slice(prefix);
        // A small payload is copied behind its header: one plain write costs the kernel less
        // than a vectored one, and small frames are where that cost shows.
        let payload = if payload.len() <= COPIED_PAYLOAD {
            frame.extend_from_slice(payload);
            &[][..]
        } else {
            payload
        };
        let Some(written) = self.write_before(frame, payload, deadline)? else {
            return Ok(false);
        };
        let (head, tail) = rest(frame, payload, written);
        let more = self.write_rest(head, tail, deadline)?;
        let (head, tail) = rest(head, tail, more);
        unsent.extend_from_slice(head);
        unsent.extend_from_slice(tail);
        if !unsent.is_empty() {
            // Only a stopped peer gets here; a steady sender never writes the flag.
            self.has_unsent.store(true, Ordering::Release);
        }
        Ok(true)
    }

    /// Like [`send_with_payload_before`](Connection::send_with_payload_before) for a message.
    pub(crate) fn send_before<T: Serialize + ?Sized>(
        &self,
        message: &T,
        deadline: Option<Instant>,
    ) -> Result<bool, Error> {
        let encoded = frame::encode(message)?;
        self.send_with_payload_before(&[], &encoded, deadline)
    }

    /// Sends `message` as one frame encoded into the reused buffer, like
    /// [`send_with_payload_before`](Connection::send_with_payload_before): `Ok(false)` when
    /// nothing could be written by `deadline`; a frame begun is committed and its rest kept.
    pub(crate) fn send_message_before<T: Serialize + ?Sized>(
        &self,
        message: &T,
        deadline: Option<Instant>,
    ) -> Result<bool, Error> {
        let Some(mut outgoing) = self.lock_before(deadline) else {
            return Ok(false);
        };
        if !self.finish_unsent(&mut outgoing, deadline)? {
            return Ok(false);
        }
        let Outgoing { frame, unsent } = &mut *outgoing;
        frame::encode_frame_into(message, self.max_frame, frame)?;
        let Some(written) = self.write_before(frame, &[], deadline)? else {
            return Ok(false);
        };
        let (head, _) = rest(frame, &[], written);
        let more = self.write_rest(head, &[], deadline)?;
        let (head, _) = rest(head, &[], more);
        if !head.is_empty() {
            unsent.extend_from_slice(head);
            self.has_unsent.store(true, Ordering::Release);
        }
        Ok(true)
    }

    /// Whether the peer sent something or hung up, checked without reading or waiting: for a
    /// server thread that waits on behalf of a peer which sends nothing while it waits.
    pub(crate) fn input_pending(&self) -> bool {
        // A check that fails says the connection is no longer usable.
        readable(&self.stream, Some(Duration::ZERO)).unwrap_or(true)
    }

    /// Reads one frame, waiting at most `timeout` for it (`None`: without limit), and hands it
    /// to `look` (`None`: the peer closed first). The read timeout is cleared afterwards, so
    /// whoever reads the connection next blocks as usual: for a handshake's one answer.
    pub(crate) fn read_frame_within<R>(
        &self,
        frames: &mut FrameReader,
        timeout: Option<Duration>,
        look: impl FnOnce(Option<Frame<'_>>) -> R,
    ) -> Result<R, Error> {
        self.read_frame_within_from(&self.stream, frames, timeout, look)
    }

    /// As [`read_frame_within`](Self::read_frame_within), reading through `source`: a reader
    /// of this connection's stream (one that takes a region handed over with the bytes).
    pub(crate) fn read_frame_within_from<R>(
        &self,
        mut source: impl io::Read,
        frames: &mut FrameReader,
        timeout: Option<Duration>,
        look: impl FnOnce(Option<Frame<'_>>) -> R,
    ) -> Result<R, Error> {
        let stream = &self.stream;
        // A zero timeout would mean none at all to the socket.
        stream.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        let read = frames.read_frame(&mut source);
        let cleared = stream.set_read_timeout(None);
        let answer = look(read?);
        cleared?;
        Ok(answer)
    }

    /// Whether part of a committed frame still waits to be sent.
    pub(crate) fn has_unsent(&self) -> bool {
        self.has_unsent.load(Ordering::Acquire)
    }

    /// Sends what is left of a committed frame, if the socket takes it now; for the reader's
    /// periodic retries.
    pub(crate) fn flush_unsent(&self) -> Result<(), Error> {
        let now = Some(Instant::now());
        match self.lock_before(now) {
            Some(mut outgoing) => self.finish_unsent(&mut outgoing, now).map(drop),
            None => Ok(()),
        }
    }

    /// Sends what is left of a committed frame, waiting for room no later than `deadline`;
    /// `Ok(false)` when some is still left then.
    pub(crate) fn flush_before(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        match self.lock_before(deadline) {
            Some(mut outgoing) => self.finish_unsent(&mut outgoing, deadline),
            None => Ok(false),
        }
    }

    /// Sends the rest of a committed frame; `Ok(false)` when some is still left at `deadline`.
    fn finish_unsent(
        &self,
        outgoing: &mut Outgoing,
        deadline: Option<Instant>,
    ) -> Result<bool, Error> {
        if outgoing.unsent.is_empty() {
            return Ok(true);
        }
        // The flag is cleared only here, where the tail is sent.
        let written = self.write_rest(&outgoing.unsent, &[], deadline)?;
        outgoing.unsent.drain(..written);
        let done = outgoing.unsent.is_empty();
        self.has_unsent.store(!done, Ordering::Release);
        Ok(done)
    }

    /// Takes the sending lock, waiting no later than `deadline`.
    fn lock_before(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, Outgoing>> {
        crate::deadline::lock_before(&self.outgoing, deadline)
    }

    /// Writes `head` then `tail` until done or `deadline`; returns how many bytes went out.
    fn write_rest(
        &self,
        head: &[u8],
        tail: &[u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        let total = head.len() + tail.len();
        let mut written = 0;
        while written < total {
            let (h, t) = rest(head, tail, written);
            match self.write_before(h, t, deadline)? {
                Some(n) => written += n,
                None => break,
            }
        }
        Ok(written)
    }

    /// Writes what the socket takes, waiting for room no later than `deadline`; `None` when
    /// nothing could be written in time.
    fn write_before(
        &self,
        head: &[u8],
        tail: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, Error> {
        // No deadline: let the kernel sleep in the write itself.
        let Some(deadline) = deadline else {
            return write_blocking(&self.stream, head, tail).map(Some);
        };
        loop {
            match self.stream.send_before(head, tail, deadline) {
                Ok(0) => return Err(Error::Disconnected),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(_) => return Err(Error::Disconnected),
            }
        }
    }

    /// Sends unless another thread holds the connection for longer than `patience`.
    pub(crate) fn send_within<T: Serialize + ?Sized>(
        &self,
        message: &T,
        patience: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(patience);
        match self.lock_before(deadline.or(Some(Instant::now()))) {
            Some(mut outgoing) => {
                self.finish_unsent(&mut outgoing, None)?;
                frame::encode_frame_into(message, self.max_frame, &mut outgoing.frame)?;
                write_all(&self.stream, &outgoing.frame)
            }
            None => Err(Error::Disconnected),
        }
    }

    /// Ends the connection both ways; a reader blocked on it wakes with end of stream.
    pub(crate) fn shutdown(&self) {
        // Already shut down or reset: nothing left to end.
        let _ = self.stream.shutdown_both();
    }

    fn lock(&self) -> MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What is left of `head` then `tail` once `written` bytes went out.
fn rest<'a>(head: &'a [u8], tail: &'a [u8], written: usize) -> (&'a [u8], &'a [u8]) {
    let from_head = written.min(head.len());
    (
        &head[from_head..],
        &tail[(written - from_head).min(tail.len())..],
    )
}

/// One write of `head` then `tail` (vectored when there is a tail), waiting for room as long
/// as it takes.
fn write_blocking(mut stream: &Stream, head: &[u8], tail: &[u8]) -> Result<usize, Error> {
    loop {
        let written = if tail.is_empty() {
            stream.write(head)
        } else {
            stream.write_vectored(&[IoSlice::new(head), IoSlice::new(tail)])
        };
        match written {
            Ok(0) => return Err(Error::Disconnected),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Error::Disconnected),
        }
    }
}

fn write_all(mut stream: &Stream, bytes: &[u8]) -> Result<(), Error> {
    stream.write_all(bytes).map_err(|_| Error::Disconnected)
}
