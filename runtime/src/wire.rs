//! Frames and messages on the parent/child connection.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes of a postcard-encoded
//! message. The codec lives behind [`encode`]/[`decode`] so that it can be swapped in one place.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

use std::time::Duration;

use crate::config::Config;
use crate::error::{Failure, Hook};
use crate::timing::{ProcessTimers, Slot};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// Largest growth of the read buffer per read, so a lying length prefix cannot make the
/// reader allocate much more than the bytes that actually arrive.
const READ_CHUNK: usize = 64 * 1024;
/// Room offered to each read, so small frames arrive whole and several at a time.
const MIN_READ: usize = 1024;

/// Something malformed or missing on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix announces more bytes than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced, header included.
        expected: usize,
    },
    /// The frame's bytes do not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Reading or writing the socket failed.
    #[error("i/o error on the wire: {0}")]
    Io(#[from] io::Error),
}

impl WireError {
    /// Whether the peer went away (reset or broken pipe) rather than sending bad bytes.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, WireError::Io(e) if matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
        ))
    }

    /// Whether a read stopped only because its timeout expired; the reader can be resumed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Encodes a value with the wire codec.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(value).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Decodes a value with the wire codec; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(WireError::Malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(WireError::Malformed(e.to_string())),
    }
}

/// Encodes `message` as one complete frame (header included), ready for a single write.
pub fn encode_frame<T: Serialize + ?Sized>(message: &T, max: u32) -> Result<Vec<u8>, WireError> {
    let mut frame = postcard::to_extend(message, vec![0u8; HEADER_LEN])
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = frame.len() - HEADER_LEN;
    if len > max as usize {
        return Err(WireError::TooLarge {
            len: len as u64,
            max,
        });
    }
    frame[..HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Writes `message` as one frame.
pub fn write_message<W: Write, T: Serialize + ?Sized>(
    mut writer: W,
    message: &T,
    max: u32,
) -> Result<(), WireError> {
    let frame = encode_frame(message, max)?;
    writer.write_all(&frame)?;
    Ok(())
}

/// Reads frames through a buffer, so one `read` call usually brings in a whole frame (or
/// several), and keeps partial progress across timeouts so a read can be resumed.
#[derive(Debug)]
pub struct FrameReader {
    max: u32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// A reader that rejects frames larger than `max` bytes.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Reads the next frame's payload. `Ok(None)` is a clean end of stream between frames.
    ///
    /// A timeout surfaces as an error for which [`WireError::is_timeout`] holds; calling again
    /// resumes where the previous call stopped.
    pub fn read_frame<R: Read>(&mut self, reader: &mut R) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            if let Some(frame) = self.take_buffered()? {
                return Ok(Some(frame));
            }
            if self.fill(reader)? == 0 {
                return self.end_of_stream();
            }
        }
    }

    /// Reads and decodes the next message. `Ok(None)` is a clean end of stream.
    pub fn read_message<R: Read, T: DeserializeOwned>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<T>, WireError> {
        match self.read_frame(reader)? {
            Some(payload) => decode(&payload).map(Some),
            None => Ok(None),
        }
    }

    /// The announced length of the frame at the front of the buffer, once its header is in.
    fn pending_len(&self) -> Result<Option<usize>, WireError> {
        let Some(header) = self.buf.get(self.start..self.start + HEADER_LEN) else {
            return Ok(None);
        };
        if self.end - self.start < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if len > self.max {
            return Err(WireError::TooLarge {
                len: u64::from(len),
                max: self.max,
            });
        }
        Ok(Some(len as usize))
    }

    /// Pops a complete frame from the buffer, if one is there.
    fn take_buffered(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        let body = self.start + HEADER_LEN;
        if self.end - body < len {
            return Ok(None);
        }
        let frame = self.buf[body..body + len].to_vec();
        self.start = body + len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(frame))
    }

    /// Reads more bytes; the buffer grows toward what the pending frame needs at most by what
    /// it already holds (and never by more than a chunk), so memory follows the bytes that
    /// actually arrive. Returns how many arrived.
    fn fill<R: Read>(&mut self, reader: &mut R) -> Result<usize, WireError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let growth = self.end.clamp(MIN_READ, READ_CHUNK);
        let wanted = match self.pending_len()? {
            Some(len) => (HEADER_LEN + len).min(self.end + growth),
            None => 0,
        }
        .max(self.end + MIN_READ);
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        }
        let n = read_some(reader, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn end_of_stream(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let got = self.end - self.start;
        if got == 0 {
            return Ok(None);
        }
        let expected = HEADER_LEN + self.pending_len()?.unwrap_or(0);
        Err(WireError::Truncated {
            got,
            expected: expected.max(HEADER_LEN),
        })
    }
}

/// One `read` call, retrying on `Interrupted`.
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, WireError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sent by the parent once the child has proven its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StartPayload {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    pub config: Config,
    pub resume: Resume,
}

/// Where a (re)started child picks up: a fresh start, a restart from the last checkpoint, or
/// a child that only runs the `error` hook for a failure the parent observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Resume {
    pub completed_runs: u64,
    pub lives_left: u32,
    pub elapsed: Duration,
    pub stop: bool,
    pub timers: ProcessTimers,
    pub usage: Usage,
    pub pending: Option<Failure>,
}

/// Time the child spent in hooks and waiting in `listen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub busy: Duration,
    pub listening: Duration,
}

/// Messages from the parent to the child.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ToChild {
    Start(Box<StartPayload>),
    Tell(#[serde(with = "serde_bytes")] Vec<u8>),
    Stop,
}

/// Messages from the child to the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ToParent {
    Hello {
        token: String,
        pid: u32,
    },
    Tell(#[serde(with = "serde_bytes")] Vec<u8>),
    Progress {
        completed_runs: u64,
        lives_left: u32,
        usage: Usage,
    },
    Checkpoint {
        #[serde(with = "serde_bytes")]
        state: Vec<u8>,
        completed_runs: u64,
        new_samples: Vec<(Slot, Duration)>,
    },
    Finishing,
    HookStarted {
        hook: Hook,
        limit: Duration,
        run: u64,
    },
    HookEnded,
    TimedOut {
        hook: Hook,
        limit: Duration,
        run: u64,
    },
    Finished {
        #[serde(with = "serde_bytes")]
        output: Vec<u8>,
        completed_runs: u64,
        timers: ProcessTimers,
    },
    Failed {
        failure: Failure,
        timers: ProcessTimers,
    },
    UnknownType(String),
    SetupFailed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_message_through_a_frame() {
        let frame = encode_frame(&ToChild::Tell(vec![1, 2, 3]), 1024).unwrap();
        let mut reader = FrameReader::new(1024);
        let msg: ToChild = reader.read_message(&mut frame.as_slice()).unwrap().unwrap();
        assert!(matches!(msg, ToChild::Tell(bytes) if bytes == [1, 2, 3]));
    }

    #[test]
    fn rejects_oversized_frame_without_allocating_it() {
        let mut input: &[u8] = &u32::MAX.to_le_bytes();
        let err = FrameReader::new(1024).read_frame(&mut input).unwrap_err();
        assert!(
            matches!(err, WireError::TooLarge { len, max: 1024 } if len == u64::from(u32::MAX))
        );
    }

    #[test]
    fn truncated_body_is_an_error() {
        let mut input: &[u8] = &[10, 0, 0, 0, 1, 2];
        let err = FrameReader::new(1024).read_frame(&mut input).unwrap_err();
        assert!(matches!(
            err,
            WireError::Truncated {
                got: 6,
                expected: 14
            }
        ));
    }

    #[test]
    fn truncated_header_is_an_error_but_empty_input_is_a_clean_end() {
        let mut partial: &[u8] = &[10, 0];
        assert!(matches!(
            FrameReader::new(16).read_frame(&mut partial),
            Err(WireError::Truncated {
                got: 2,
                expected: 4
            })
        ));
        let mut empty: &[u8] = &[];
        assert!(
            FrameReader::new(16)
                .read_frame(&mut empty)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn encoding_refuses_frames_over_the_limit() {
        let err = encode_frame(&ToChild::Tell(vec![0; 100]), 10).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { max: 10, .. }));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::error::{FailureKind, FailureReport};
    use proptest::prelude::*;

    /// Reads messages until the input ends or a frame is rejected; must never panic.
    fn drain<T: DeserializeOwned>(mut input: &[u8], max: u32) -> usize {
        let mut reader = FrameReader::new(max);
        let mut decoded = 0;
        while let Ok(Some(_)) = reader.read_message::<_, T>(&mut input) {
            decoded += 1;
        }
        decoded
    }

    fn valid_stream() -> Vec<u8> {
        let messages = [
            ToParent::Hello {
                token: "t".repeat(32),
                pid: 42,
            },
            ToParent::Tell(vec![1, 2, 3, 4]),
            ToParent::Progress {
                completed_runs: 1 << 40,
                lives_left: 3,
                usage: Usage::default(),
            },
            ToParent::Failed {
                failure: Failure::Hook(FailureReport {
                    hook: Hook::Postrun,
                    run: 3,
                    kind: FailureKind::Panicked,
                    message: "boom".into(),
                }),
                timers: ProcessTimers::default(),
            },
            ToParent::TimedOut {
                hook: Hook::Run,
                limit: Duration::from_millis(200),
                run: 2,
            },
            ToParent::Finished {
                output: vec![9; 40],
                completed_runs: 7,
                timers: ProcessTimers::default(),
            },
        ];
        messages
            .iter()
            .flat_map(|m| encode_frame(m, 4096).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 60_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic_or_overallocate(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            largest_allocation::reset();
            drain::<ToParent>(&bytes, u32::MAX);
            drain::<ToChild>(&bytes, u32::MAX);
            prop_assert!(largest_allocation::reset() <= READ_CHUNK + MIN_READ);
        }

        #[test]
        fn corrupted_valid_streams_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
            let mut stream = valid_stream();
            for (at, value) in flips {
                let i = at.index(stream.len());
                stream[i] ^= value | 1;
            }
            let end = cut.index(stream.len() + 1);
            drain::<ToParent>(&stream[..end], 4096);
        }
    }

    #[test]
    fn a_lying_length_prefix_allocates_only_what_arrives() {
        largest_allocation::reset();
        let mut input: &[u8] = &[0xfe, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = FrameReader::new(u32::MAX)
            .read_frame(&mut input)
            .unwrap_err();
        assert!(matches!(err, WireError::Truncated { got: 7, .. }));
        assert!(largest_allocation::reset() <= READ_CHUNK + MIN_READ);
    }

    /// Records the largest single allocation made by the current thread.
    mod largest_allocation {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static LARGEST: Cell<usize> = const { Cell::new(0) };
        }

        struct Recording;

        // SAFETY: forwards every call to the system allocator unchanged.
        unsafe impl GlobalAlloc for Recording {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        #[global_allocator]
        static RECORDING: Recording = Recording;

        /// Returns the largest allocation since the last reset and starts over.
        pub fn reset() -> usize {
            LARGEST.with(|l| l.replace(0))
        }
    }

    #[test]
    fn an_intact_stream_decodes_every_message() {
        let stream = valid_stream();
        assert_eq!(drain::<ToParent>(&stream, 4096), 6);
    }
}
