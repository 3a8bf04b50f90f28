//! Frames: a 4-byte little-endian length followed by that many bytes, never more than a
//! configured maximum. The codec (postcard) lives behind [`encode`]/[`decode`] so that it can
//! be swapped in one place.
//!
//! Reading keeps memory proportional to the bytes that actually arrived, whatever a length
//! prefix claims: small frames are cut out of one read buffer, large ones grow as they arrive.
//! [`FrameReader`] is the one parser of frames in the runtime: every connection's reader, the
//! pipe's ends and the rendezvous's hellos use it, so the one that is fuzzed is the one that
//! runs. Its two policies serve those users: [`FrameReader::keep_large`] keeps the room of the
//! largest frame for the next (a stream of big messages allocates once), and
//! [`FrameReader::exact`] never reads past the frame at the front (a handshake whose stream
//! goes on to another reader). It works the same on a blocking stream, a stream with a read
//! timeout and a non-blocking stream: a `WouldBlock` or a timeout keeps the partial frame and
//! the next call resumes it.

use std::io::{self, Read};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// Size of the read buffer. Frames that fit are returned as slices of it, several per read;
/// larger frames are read into a vector of their own.
const READ_BUFFER: usize = 64 * 1024;

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
    /// Whether a read stopped only because its timeout expired; the reader can be resumed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

thread_local! {
    /// Why a value refused to be serialized (postcard keeps no message of its own).
    static REFUSAL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why a value refuses to be serialized, for the encoder's error; a handle that must
/// not travel (a stopped shared value's) calls it before returning its serde error.
pub(crate) fn note_refusal(message: &str) {
    REFUSAL.with(|refusal| *refusal.borrow_mut() = Some(message.to_owned()));
}

fn serialize_error(error: postcard::Error) -> WireError {
    match REFUSAL.with(|refusal| refusal.borrow_mut().take()) {
        Some(message) => WireError::Malformed(message),
        None => WireError::Malformed(error.to_string()),
    }
}

/// Encodes a value with the wire codec.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(value).map_err(serialize_error)
}

/// Encodes a value with the wire codec into `buffer`, replacing its contents but keeping its
/// capacity, so a sender that reuses one buffer allocates only when a value outgrows it.
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), WireError> {
    buffer.clear();
    append_into(value, buffer)
}

/// Appends `value`, encoded, to `buffer` (what is already there stays); on an error the
/// buffer is as it was.
pub fn append_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), WireError> {
    let start = buffer.len();
    postcard::serialize_with_flavor(value, AppendToVec(buffer)).map_err(|e| {
        buffer.truncate(start);
        serialize_error(e)
    })
}

/// Appends `value` as the wire codec writes a varint (seven bits a byte, low first), what
/// [`take_varint`] reads.
pub fn put_varint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

/// Reads a varint the wire codec wrote at the start of `bytes`: its value and the rest.
/// `None` for one longer than nine bytes (past 63 bits) or cut short: a fast reader then leaves
/// the bytes to the codec, which decides.
pub fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    // Most varints (small indices, tags, lengths) are one byte.
    if let Some((&byte, rest)) = bytes.split_first()
        && byte < 0x80
    {
        return Some((u64::from(byte), rest));
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

/// Appends `bytes` to `buffer`: the few bytes of a varint or a small value copied one by one,
/// which costs less than a call to the general copy routine — measurably, where it runs per
/// item (encoding each item's output, writing each result and each chunk item).
pub fn append_bytes(buffer: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= 16 {
        buffer.reserve(bytes.len());
        for &byte in bytes {
            buffer.push(byte);
        }
    } else {
        buffer.extend_from_slice(bytes);
    }
}

/// A postcard output that appends to a vector: a byte with `push`, a slice with one copy
/// (postcard's own extending output goes through `Extend`, measurably slower for small values).
struct AppendToVec<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendToVec<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        append_bytes(self.0, data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The encoded length of a value, computed without writing it anywhere.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, WireError> {
    postcard::experimental::serialized_size(value).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Writes `value` as one frame of `len` body bytes (from [`encoded_len`]) to `writer`,
/// copying small pieces into `scratch` (reused) and writing large byte strings straight from
/// the value, so a big payload is never copied into a frame buffer.
///
/// On an error the frame may be partly written: the caller must give up the connection.
pub fn write_frame_streaming<T: Serialize + ?Sized, W: io::Write>(
    value: &T,
    len: usize,
    max: u32,
    writer: &mut W,
    scratch: &mut Vec<u8>,
) -> Result<(), WireError> {
    check_len(len, max)?;
    scratch.clear();
    scratch.extend_from_slice(&(len as u32).to_le_bytes());
    let mut streaming = Streaming {
        writer,
        scratch,
        written: 0,
        failed: None,
    };
    let result = postcard::serialize_with_flavor(value, &mut streaming);
    if let Some(error) = streaming.failed.take() {
        return Err(WireError::Io(error));
    }
    result.map_err(|e| WireError::Malformed(e.to_string()))?;
    if streaming.written != HEADER_LEN + len {
        return Err(WireError::Malformed(format!(
            "the value encoded to {} bytes, not the {len} it measured",
            streaming.written.saturating_sub(HEADER_LEN)
        )));
    }
    Ok(())
}

/// Pieces at least this long are written from the value itself.
const STREAM_DIRECT: usize = 16 * 1024;

/// A codec output that writes through to `writer`.
struct Streaming<'a, W: io::Write> {
    writer: &'a mut W,
    scratch: &'a mut Vec<u8>,
    /// Bytes handed to the writer or the scratch buffer so far, header included.
    written: usize,
    failed: Option<io::Error>,
}

impl<W: io::Write> Streaming<'_, W> {
    fn flush_scratch(&mut self) -> postcard::Result<()> {
        let result = self.writer.write_all(self.scratch);
        self.scratch.clear();
        result.map_err(|e| {
            self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl<W: io::Write> postcard::ser_flavors::Flavor for &mut Streaming<'_, W> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.written += data.len();
        if data.len() < STREAM_DIRECT {
            self.scratch.extend_from_slice(data);
            return Ok(());
        }
        self.flush_scratch()?;
        self.writer.write_all(data).map_err(|e| {
            self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.written += 1;
        self.scratch.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        // Account for the header, which was put in the scratch buffer before encoding.
        self.written += HEADER_LEN;
        self.flush_scratch()
    }
}

/// Decodes a value with the wire codec; trailing bytes are an error.
pub fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, WireError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(WireError::Malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(WireError::Malformed(e.to_string())),
    }
}

/// Decodes an owned value; see [`decode`].
pub fn decode_owned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    decode(bytes)
}

/// Encodes `message` as one complete frame (header included) into `frame`, reusing its
/// capacity; fails without writing anything useful when the message exceeds `max`.
pub fn encode_frame_into<T: Serialize + ?Sized>(
    message: &T,
    max: u32,
    frame: &mut Vec<u8>,
) -> Result<(), WireError> {
    let mut reused = std::mem::take(frame);
    reused.clear();
    reused.extend_from_slice(&[0; HEADER_LEN]);
    *frame = postcard::to_extend(message, reused).map_err(serialize_error)?;
    let len = frame.len() - HEADER_LEN;
    check_len(len, max)?;
    frame[..HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Encodes `message` as one complete frame (header included), ready for a single write.
pub fn encode_frame<T: Serialize + ?Sized>(message: &T, max: u32) -> Result<Vec<u8>, WireError> {
    let mut frame = Vec::new();
    encode_frame_into(message, max, &mut frame)?;
    Ok(frame)
}

/// Refuses a frame body of `len` bytes when it exceeds `max`.
pub fn check_len(len: usize, max: u32) -> Result<(), WireError> {
    if len > max as usize {
        return Err(WireError::TooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(())
}

/// A frame's payload: a slice of the reader's buffer, or a vector of its own when it was too
/// large for the buffer.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A frame in the reader's own buffers (a small frame, or a large one read with
    /// [`FrameReader::keep_large`]), valid until the next read.
    Buffered(&'a [u8]),
    /// A large frame, read into its own allocation.
    Owned(Vec<u8>),
}

impl Frame<'_> {
    /// The payload bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Frame::Buffered(bytes) => bytes,
            Frame::Owned(bytes) => bytes,
        }
    }
}

/// A large frame being read into its own vector.
#[derive(Debug)]
struct LargeFrame {
    bytes: Vec<u8>,
    len: usize,
}

/// What the buffer holds at its front.
enum Front {
    /// A whole small frame: its payload's range in the buffer.
    Small(std::ops::Range<usize>),
    /// The header of a frame too large for the buffer.
    Large(usize),
    /// Not enough bytes yet.
    Partial,
}

/// Reads frames through a buffer, so one `read` call usually brings in a whole frame (or
/// several), and keeps partial progress across timeouts (and `WouldBlock` on a non-blocking
/// stream) so a read can be resumed.
#[derive(Debug)]
pub struct FrameReader {
    max: u32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    large: Option<LargeFrame>,
    /// The vector of the last large frame, kept for the next one ([`FrameReader::keep_large`]).
    kept: Option<Vec<u8>>,
    /// Never read past the end of the frame at the front ([`FrameReader::exact`]).
    exact: bool,
}

impl FrameReader {
    /// A reader that rejects frames larger than `max` bytes.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
            large: None,
            kept: None,
            exact: false,
        }
    }

    /// Keeps the room of the largest frame received for the next large frame, which is then
    /// returned as a [`Frame::Buffered`] slice: a stream of big messages allocates once
    /// instead of once per message. The room still grows only with bytes that arrived.
    pub fn keep_large(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    /// Never reads past the end of the frame at the front: each `read` asks for at most the
    /// rest of the current header or body, and the buffer is only as large as that frame. For
    /// a handshake frame whose stream is handed on to another reader afterwards.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// The largest frame body accepted.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Reads the next frame. `Ok(None)` is a clean end of stream between frames.
    ///
    /// A timeout surfaces as an error for which [`WireError::is_timeout`] holds; calling again
    /// resumes where the previous call stopped.
    pub fn read_frame<R: Read>(&mut self, reader: &mut R) -> Result<Option<Frame<'_>>, WireError> {
        loop {
            if self.large.is_some() {
                let bytes = self.continue_large(reader)?;
                return Ok(Some(match &mut self.kept {
                    Some(kept) => {
                        *kept = bytes;
                        Frame::Buffered(kept)
                    }
                    None => Frame::Owned(bytes),
                }));
            }
            match self.front()? {
                Front::Small(range) => {
                    self.start = range.end;
                    return Ok(Some(Frame::Buffered(&self.buf[range])));
                }
                Front::Large(len) => self.begin_large(len),
                Front::Partial => {
                    if self.fill(reader)? == 0 {
                        return self.end_of_stream();
                    }
                }
            }
        }
    }

    /// Reads and decodes the next message. `Ok(None)` is a clean end of stream.
    pub fn read_message<R: Read, T: DeserializeOwned>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<T>, WireError> {
        match self.read_frame(reader)? {
            Some(frame) => decode(frame.bytes()).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a whole frame is already buffered, so the next read returns without waiting.
    pub fn has_buffered_frame(&self) -> bool {
        self.large.is_none() && matches!(self.front(), Ok(Front::Small(_)))
    }

    /// Bytes received but not yet returned as frames.
    fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn front(&self) -> Result<Front, WireError> {
        let Some(header) = self.buf.get(self.start..self.start + HEADER_LEN) else {
            return Ok(Front::Partial);
        };
        if self.buffered() < HEADER_LEN {
            return Ok(Front::Partial);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        check_len(len as usize, self.max)?;
        let len = len as usize;
        if HEADER_LEN + len > READ_BUFFER {
            return Ok(Front::Large(len));
        }
        let body = self.start + HEADER_LEN;
        if self.end - body < len {
            return Ok(Front::Partial);
        }
        Ok(Front::Small(body..body + len))
    }

    /// Moves the buffered start of a large frame into a vector of its own.
    fn begin_large(&mut self, len: usize) {
        let body = self.start + HEADER_LEN;
        let mut bytes = self.kept.as_mut().map(std::mem::take).unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(&self.buf[body..self.end]);
        self.start = 0;
        self.end = 0;
        self.large = Some(LargeFrame { bytes, len });
    }

    /// Reads the rest of a large frame; the vector grows with the bytes that arrive, so a
    /// lying length costs nothing until the bytes are really sent.
    fn continue_large<R: Read>(&mut self, reader: &mut R) -> Result<Vec<u8>, WireError> {
        let Some(large) = self.large.as_mut() else {
            return Err(WireError::Malformed("no large frame in progress".into()));
        };
        while large.bytes.len() < large.len {
            let missing = (large.len - large.bytes.len()) as u64;
            match reader.take(missing).read_to_end(&mut large.bytes) {
                Ok(0) => {
                    return Err(WireError::Truncated {
                        got: HEADER_LEN + large.bytes.len(),
                        expected: HEADER_LEN + large.len,
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let done = self.large.take().map(|large| large.bytes);
        done.ok_or_else(|| WireError::Malformed("no large frame in progress".into()))
    }

    /// Reads more bytes into the buffer, after moving what is left to its front. Returns how
    /// many arrived.
    fn fill<R: Read>(&mut self, reader: &mut R) -> Result<usize, WireError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let limit = if self.exact {
            self.front_needs().min(READ_BUFFER)
        } else {
            READ_BUFFER
        };
        if self.buf.len() < limit {
            self.buf.resize(limit, 0);
        }
        let n = read_some(reader, &mut self.buf[self.end..limit])?;
        self.end += n;
        Ok(n)
    }

    /// Bytes the frame at the front needs in all, header included: the header alone until
    /// it is in (the length was checked against the limit by `front`).
    fn front_needs(&self) -> usize {
        match self.buf.get(self.start..self.start + HEADER_LEN) {
            Some(h) if self.buffered() >= HEADER_LEN => {
                HEADER_LEN + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize
            }
            _ => HEADER_LEN,
        }
    }

    fn end_of_stream(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        let got = self.buffered();
        if got == 0 {
            return Ok(None);
        }
        let announced = self.buf.get(self.start..self.start + HEADER_LEN);
        let expected = match announced {
            Some(h) if got >= HEADER_LEN => {
                HEADER_LEN + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize
            }
            _ => HEADER_LEN,
        };
        Err(WireError::Truncated { got, expected })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn varints_are_read_as_the_codec_wrote_them() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            (1 << 63) - 1,
        ] {
            let mut bytes = encode(&value).unwrap();
            bytes.push(42);
            assert_eq!(take_varint(&bytes), Some((value, &[42u8][..])), "{value}");
        }
        // Past 63 bits, or cut short, the codec decides.
        assert_eq!(take_varint(&encode(&u64::MAX).unwrap()), None);
        assert_eq!(take_varint(&[0x80]), None);
        assert_eq!(take_varint(&[]), None);
    }

    #[test]
    fn round_trips_a_message_through_a_frame() {
        let frame = encode_frame(&(7u8, String::from("x")), 1024).unwrap();
        let mut reader = FrameReader::new(1024);
        let msg: (u8, String) = reader.read_message(&mut frame.as_slice()).unwrap().unwrap();
        assert_eq!(msg, (7, "x".into()));
    }

    #[test]
    fn several_small_frames_and_one_large_frame_arrive_whole_and_in_order() {
        let large = vec![7u8; 3 * READ_BUFFER + 11];
        let mut stream = frame_of(b"one");
        stream.extend(frame_of(&large));
        stream.extend(frame_of(b"two"));
        let mut input = stream.as_slice();
        let mut reader = FrameReader::new(u32::MAX);
        let mut seen = Vec::new();
        while let Some(frame) = reader.read_frame(&mut input).unwrap() {
            seen.push(frame.bytes().to_vec());
        }
        assert_eq!(seen, [b"one".to_vec(), large, b"two".to_vec()]);
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
    fn a_large_frame_cut_short_is_truncated() {
        let mut stream = frame_of(&vec![1u8; 2 * READ_BUFFER]);
        stream.truncate(READ_BUFFER + 100);
        let err = FrameReader::new(u32::MAX)
            .read_frame(&mut stream.as_slice())
            .unwrap_err();
        assert!(matches!(err, WireError::Truncated { got, .. } if got == READ_BUFFER + 100));
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
        let err = encode_frame(&vec![0u8; 100], 10).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { max: 10, .. }));
    }

    #[test]
    fn encoding_into_a_buffer_reuses_it() {
        let mut frame = Vec::with_capacity(256);
        let capacity = frame.capacity();
        encode_frame_into(&[1u8, 2, 3], 1024, &mut frame).unwrap();
        encode_frame_into(&[4u8], 1024, &mut frame).unwrap();
        assert_eq!(frame, [1, 0, 0, 0, 4]);
        assert_eq!(frame.capacity(), capacity);
    }

    /// Hands out at most `step` bytes per read, and a timeout once in a while.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
        calls: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn keeping_large_frames_survives_trickling_and_timeouts_and_keeps_the_room() {
        let messages: Vec<Vec<u8>> =
            vec![vec![1; 3], vec![2; 200_000], vec![3; 10], vec![4; 70_000]];
        let bytes: Vec<u8> = messages.iter().flat_map(|m| frame_of(m)).collect();
        for step in [1, 7, 4096, 1 << 20] {
            let mut reader = Trickle {
                bytes: bytes.clone(),
                at: 0,
                step,
                calls: 0,
            };
            let mut frames = FrameReader::new(1 << 20).keep_large();
            let mut received = Vec::new();
            loop {
                match frames.read_frame(&mut reader) {
                    Ok(Some(frame)) => {
                        assert!(matches!(frame, Frame::Buffered(_)));
                        received.push(frame.bytes().to_vec());
                    }
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(received, messages, "step {step}");
            // The 200 KB frame's room served the 70 KB one.
            let kept = frames.kept.as_ref().map_or(0, Vec::capacity);
            assert!(kept >= 200_000, "{kept}");
        }
    }

    #[test]
    fn an_exact_reader_never_reads_past_its_frame() {
        let mut stream = frame_of(b"hello");
        stream.extend(frame_of(b"next"));
        let mut reader = Trickle {
            bytes: stream,
            at: 0,
            step: usize::MAX,
            calls: 0,
        };
        let mut frames = FrameReader::new(64).exact();
        let frame = loop {
            match frames.read_frame(&mut reader) {
                Ok(Some(frame)) => break frame.bytes().to_vec(),
                Err(e) if e.is_timeout() => {}
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(frame, b"hello");
        assert_eq!(reader.at, HEADER_LEN + 5, "read past the frame");
        assert!(frames.buf.len() <= HEADER_LEN + 5);
    }
}
