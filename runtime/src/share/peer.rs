//! The sans-IO parts of the coordinator: cutting a connection's bytes into frames, and
//! applying one operation to the value. Both are tested here without sockets or threads.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use crate::protocol::share::{Target, WholeOp};
use crate::share::Shared;
use crate::share::field::{decode_args, encode_reply};
use crate::transport::frame::{HEADER_LEN, WireError};

/// How many bytes a connection reads at a time at least.
const READ_CHUNK: usize = 64 * 1024;

/// The bytes received on one connection and not yet consumed.
#[derive(Debug)]
pub(crate) struct Inbound {
    buf: Vec<u8>,
    /// Where unconsumed bytes begin.
    start: usize,
    /// Where received bytes end; `buf` beyond it is room for the next read.
    end: usize,
    max_frame: u32,
}

impl Inbound {
    pub(crate) fn new(max_frame: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    /// Room for the next read: consumed bytes are dropped first, and there is always at least
    /// [`READ_CHUNK`] bytes of room.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that the last read put `n` bytes into [`spare`](Inbound::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The range of the next complete frame's body, consumed; `None` when no whole frame is
    /// buffered. A length above the limit is an error (the peer is dropped).
    pub(crate) fn next_frame(&mut self) -> Result<Option<Range<usize>>, WireError> {
        let available = &self.buf[self.start..self.end];
        let Some(header) = available.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if len > self.max_frame {
            return Err(WireError::TooLarge {
                len: u64::from(len),
                max: self.max_frame,
            });
        }
        let len = len as usize;
        if available.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
        self.start = body.end;
        Ok(Some(body))
    }

    /// The bytes of a frame returned by [`next_frame`](Inbound::next_frame); valid until the
    /// next [`spare`](Inbound::spare).
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Puts back a frame returned by [`next_frame`](Inbound::next_frame), so the next call
    /// returns it again.
    pub(crate) fn unread(&mut self, body: Range<usize>) {
        self.start = body.start - HEADER_LEN;
    }

    /// Whether no bytes are waiting.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Applies one operation to `value`, writing any result into `reply`. A panic in user code is
/// caught and becomes the error message; the value keeps whatever the method did before it
/// panicked.
pub(crate) fn apply<T: Shared>(
    value: &mut T,
    target: Target,
    args: &[u8],
    reply: &mut Vec<u8>,
    last_error: &Mutex<Option<String>>,
) -> Result<(), String> {
    reply.clear();
    let outcome = catch_unwind(AssertUnwindSafe(|| match target {
        Target::Field { index, op } => value.apply_field(index, op, args, reply),
        Target::Method(index) => value.apply_method(index, args, reply),
        Target::Whole(WholeOp::Get) => encode_reply(value, reply),
        Target::Whole(WholeOp::Set) => decode_args(args).map(|new| *value = new),
        Target::Whole(WholeOp::LastError) => {
            let recorded = last_error.lock().unwrap_or_else(PoisonError::into_inner);
            encode_reply(&*recorded, reply)
        }
    }));
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("{}: {error}", describe::<T>(target))),
        Err(panic) => Err(format!(
            "{} panicked: {}",
            describe::<T>(target),
            panic_message(panic.as_ref())
        )),
    }
}

/// Names an operation for error messages: `` `Tally::record` `` or `` `Tally.counter` Add ``.
pub(crate) fn describe<T: Shared>(target: Target) -> String {
    let type_name = std::any::type_name::<T>();
    let type_name = type_name.rsplit("::").next().unwrap_or(type_name);
    match target {
        Target::Field { index, op } => {
            let field = T::FIELDS.get(usize::from(index)).copied().unwrap_or("?");
            format!("`{type_name}.{field}` {op:?}")
        }
        Target::Method(index) => {
            let method = T::method_name(index).unwrap_or("?");
            format!("`{type_name}::{method}`")
        }
        Target::Whole(op) => format!("`{type_name}` {op:?}"),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for body in bodies {
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(body);
        }
        bytes
    }

    fn feed(inbound: &mut Inbound, bytes: &[u8]) {
        let spare = inbound.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        inbound.filled(bytes.len());
    }

    #[test]
    fn cuts_frames_across_reads() {
        let bytes = framed(&[b"one", b"", b"three"]);
        let mut inbound = Inbound::new(1024);
        let mut seen = Vec::new();
        for chunk in bytes.chunks(2) {
            feed(&mut inbound, chunk);
            while let Some(range) = inbound.next_frame().unwrap() {
                seen.push(inbound.bytes(range).to_vec());
            }
        }
        assert_eq!(seen, [b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert!(inbound.is_empty());
    }

    #[test]
    fn refuses_a_frame_over_the_limit() {
        let mut inbound = Inbound::new(4);
        feed(&mut inbound, &framed(&[b"too long"]));
        assert!(inbound.next_frame().is_err());
    }

    #[test]
    fn a_partial_header_is_not_a_frame() {
        let mut inbound = Inbound::new(1024);
        feed(&mut inbound, &[3, 0]);
        assert_eq!(inbound.next_frame().unwrap(), None);
        assert!(!inbound.is_empty());
    }

    #[test]
    fn whole_value_get_set_and_last_error() {
        let mut value: crate::share::builtins::tests::Pair = Default::default();
        let mut reply = Vec::new();
        let new = frame::encode(&crate::share::builtins::tests::Pair { a: 7, b: vec![1] }).unwrap();
        let none = Mutex::new(None);
        apply(
            &mut value,
            Target::Whole(WholeOp::Set),
            &new,
            &mut reply,
            &none,
        )
        .unwrap();
        assert_eq!(value.a, 7);
        apply(
            &mut value,
            Target::Whole(WholeOp::Get),
            &[],
            &mut reply,
            &none,
        )
        .unwrap();
        assert_eq!(reply, new);
        let last = Mutex::new(Some("boom".to_owned()));
        apply(
            &mut value,
            Target::Whole(WholeOp::LastError),
            &[],
            &mut reply,
            &last,
        )
        .unwrap();
        assert_eq!(
            frame::decode_owned::<Option<String>>(&reply)
                .unwrap()
                .as_deref(),
            Some("boom")
        );
    }
}
