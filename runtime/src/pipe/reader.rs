//! Reading a pipe's frames into one buffer that is reused: small frames are cut out of one
//! read several at a time; a large frame is read straight to its end, into room kept from
//! earlier large frames, so streaming big messages copies each byte once out of the kernel.
//!
//! The buffer grows, doubling, with the bytes that actually arrive (never straight to what a
//! header claims, and never past the pipe's limit), and keeps the room of the largest frame
//! received. Partial progress survives a read timeout, so a timed receive can be resumed.

use std::io::{self, Read};
use std::ops::Range;

use crate::transport::frame::{HEADER_LEN, WireError, check_len};

/// Bytes read at a time while frames are small.
const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct FrameBuffer {
    max: u32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameBuffer {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            max,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The largest frame body accepted.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Whether a whole frame is buffered, so the next read returns without waiting.
    pub(crate) fn has_buffered_frame(&self) -> bool {
        matches!(self.buffered_frame(), Ok(Some(_)))
    }

    /// Reads until a whole frame is buffered and returns its body; `Ok(None)` for a clean end
    /// of stream between frames.
    pub(crate) fn read_frame<R: Read>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<&[u8]>, WireError> {
        loop {
            if let Some(body) = self.buffered_frame()? {
                self.start = body.end;
                return Ok(Some(&self.buf[body]));
            }
            let wanted = self.bytes_wanted()?;
            self.make_room(wanted);
            // A large frame is read exactly to its end, so nothing after it needs moving.
            let limit = if wanted > CHUNK {
                (self.start + wanted).min(self.buf.len())
            } else {
                self.buf.len()
            };
            let n = read_some(reader, &mut self.buf[self.end..limit])?;
            if n == 0 {
                return self.end_of_stream();
            }
            self.end += n;
        }
    }

    /// The body of the first frame, when it is all here.
    fn buffered_frame(&self) -> Result<Option<Range<usize>>, WireError> {
        let Some(len) = self.announced()? else {
            return Ok(None);
        };
        let body = self.start + HEADER_LEN;
        if self.end - body < len {
            return Ok(None);
        }
        Ok(Some(body..body + len))
    }

    /// The first frame's announced length, once its header is here.
    fn announced(&self) -> Result<Option<usize>, WireError> {
        let Some(header) = self.buf.get(self.start..self.start + HEADER_LEN) else {
            return Ok(None);
        };
        if self.end - self.start < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        check_len(len, self.max)?;
        Ok(Some(len))
    }

    /// Bytes the first frame needs from `start`: its header, or all of it once that is known.
    fn bytes_wanted(&self) -> Result<usize, WireError> {
        Ok(self.announced()?.map_or(HEADER_LEN, |len| HEADER_LEN + len))
    }

    /// Moves the unread bytes to the front when the frame would not fit after them, and
    /// grows the buffer to hold it (kept for later frames).
    fn make_room(&mut self, wanted: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.start + wanted.max(CHUNK) > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Grow with the bytes that really arrived (doubling), never straight to what a header
        // claims; the room stays for later frames.
        let needed = (self.start + wanted)
            .min(self.end.saturating_mul(2))
            .max(CHUNK);
        if self.buf.len() < needed {
            self.buf.resize(needed, 0);
        }
    }

    fn end_of_stream(&mut self) -> Result<Option<&[u8]>, WireError> {
        let got = self.end - self.start;
        if got == 0 {
            return Ok(None);
        }
        Err(WireError::Truncated {
            got,
            expected: self.bytes_wanted().unwrap_or(HEADER_LEN),
        })
    }
}

/// One `read` call, retrying on `Interrupted`.
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, WireError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame::encode_frame;

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
    fn small_and_large_frames_survive_trickling_and_timeouts() {
        let messages: Vec<Vec<u8>> =
            vec![vec![1; 3], vec![2; 200_000], vec![3; 10], vec![4; 70_000]];
        let mut bytes = Vec::new();
        for message in &messages {
            bytes.extend(encode_frame(&serde_bytes::Bytes::new(message), 1 << 20).unwrap());
        }
        for step in [1, 7, 4096, 1 << 20] {
            let mut reader = Trickle {
                bytes: bytes.clone(),
                at: 0,
                step,
                calls: 0,
            };
            let mut frames = FrameBuffer::new(1 << 20);
            let mut received = Vec::new();
            loop {
                match frames.read_frame(&mut reader) {
                    Ok(Some(body)) => {
                        let bytes: serde_bytes::ByteBuf =
                            crate::transport::frame::decode(body).unwrap();
                        received.push(bytes.into_vec());
                    }
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(received, messages, "step {step}");
        }
    }

    #[test]
    fn an_oversized_or_cut_frame_is_an_error() {
        let mut frames = FrameBuffer::new(16);
        let mut oversized = &(100u32.to_le_bytes())[..];
        assert!(matches!(
            frames.read_frame(&mut oversized),
            Err(WireError::TooLarge { .. })
        ));
        let mut frames = FrameBuffer::new(16);
        let mut cut = &[5, 0, 0, 0, 1, 2][..];
        assert!(matches!(
            frames.read_frame(&mut cut),
            Err(WireError::Truncated {
                got: 6,
                expected: 9
            })
        ));
    }
}
