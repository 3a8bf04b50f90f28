//! Optimistic transactions: an operation with no native command — a `#[shared]` method, a
//! field operation the server has no command for, the whole value — runs in this process on
//! a copy of the value read from the server, with the local share's own code
//! ([`peer::apply`]), and its writes go back only if nothing it read changed meanwhile.
//!
//! `WATCH` the share's key and the fields the operation reads (for a method, its read set in
//! `SHARED_META`), read every field, rebuild the value, apply; a failure or a panic ends the
//! transaction with nothing sent (`UNWATCH`), so it changes nothing. Otherwise `MULTI`, write
//! the fields of its write set whole, `EXEC`: a nil answer means a watched key changed, and
//! the operation runs again on fresh values, at most [`ATTEMPTS`] times with a growing random
//! pause. An operation that writes nothing reads every field in one `MULTI` (a consistent
//! snapshot) and needs no retry.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Connection, Value};

use crate::cluster::link;
use crate::cluster::share::failure::{Failure, ShareKeys};
use crate::cluster::share::store;
use crate::protocol::share::{FieldOp, Target};
use crate::share::peer::{self, describe};
use crate::share::{ApplyError, Layout, Shared};
use crate::transport::frame;

/// How many times an operation runs before conflicts make it give up.
pub(super) const ATTEMPTS: u32 = 64;

/// One operation's transaction: the share's keys and layouts, and the fields (by index) it
/// reads and writes.
pub(super) struct Plan<'a> {
    pub(super) keys: &'a ShareKeys,
    pub(super) layouts: &'a [Layout],
    pub(super) reads: Vec<usize>,
    pub(super) writes: Vec<usize>,
}

impl Plan<'_> {
    /// Runs `target` with `args` and returns its encoded result.
    pub(super) fn run<T: Shared>(
        &self,
        c: &mut Connection,
        target: Target,
        args: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        for attempt in 0..ATTEMPTS {
            if let Some(reply) = self.attempt::<T>(c, target, args)? {
                return Ok(reply);
            }
            pause(attempt);
        }
        Err(Failure::Failed(format!(
            "{} gave up after {ATTEMPTS} attempts: other writers kept changing the fields it reads",
            describe::<T>(target)
        )))
    }

    /// One attempt: the result, or `None` when a watched key changed.
    fn attempt<T: Shared>(
        &self,
        c: &mut Connection,
        target: Target,
        args: &[u8],
    ) -> Result<Option<Vec<u8>>, Failure> {
        let writes = !self.writes.is_empty();
        if writes {
            let mut watch = redis::cmd("WATCH");
            watch.arg(&self.keys.share);
            for &index in &self.reads {
                if let Some(key) = self.keys.fields.get(index) {
                    watch.arg(key);
                }
            }
            watch.query::<()>(c)?;
        }
        let applied = self.read_and_apply::<T>(c, target, args, writes);
        let (value, reply) = match applied {
            Ok(done) => done,
            Err(failure) => {
                if writes && !matches!(failure, Failure::Link(_)) {
                    redis::cmd("UNWATCH").query::<()>(c)?;
                }
                return Err(failure);
            }
        };
        let Some(mut value) = value else {
            return Ok(Some(reply));
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for &index in &self.writes {
            let (Some(key), Some(layout)) = (self.keys.fields.get(index), self.layouts.get(index))
            else {
                continue;
            };
            let encoding = field_encoding(&mut value, index).map_err(failed)?;
            let parts = (layout.split)(&encoding).map_err(failed)?;
            store::write_field(&mut pipe, layout.kind, key, parts);
        }
        let done: Value = pipe.query(c)?;
        Ok((done != Value::Nil).then_some(reply))
    }

    /// Reads every field, rebuilds the value and applies the operation; the value comes back
    /// only when there are writes to send.
    fn read_and_apply<T: Shared>(
        &self,
        c: &mut Connection,
        target: Target,
        args: &[u8],
        writes: bool,
    ) -> Result<(Option<T>, Vec<u8>), Failure> {
        let mut pipe = redis::pipe();
        if !writes {
            pipe.atomic();
        }
        pipe.cmd("EXISTS").arg(&self.keys.share);
        for (key, layout) in self.keys.fields.iter().zip(self.layouts) {
            store::read_field(&mut pipe, layout.kind, key);
        }
        let answers: Value = pipe.query(c)?;
        let answers = link::items(&answers);
        let Some((exists, fields)) = answers.split_first() else {
            return Err(Failure::Gone);
        };
        if link::int(exists) != Some(1) {
            return Err(Failure::Gone);
        }
        let mut encoding = Vec::new();
        for (answer, layout) in fields.iter().zip(self.layouts) {
            let parts = store::parse_field(layout.kind, answer).ok_or(Failure::Gone)?;
            encoding.extend((layout.join)(parts).map_err(failed)?);
        }
        let mut value: T = frame::decode_owned(&encoding).map_err(|e| {
            Failure::Failed(format!(
                "the value on the server does not read as `{}`: {e}",
                std::any::type_name::<T>()
            ))
        })?;
        let mut reply = Vec::new();
        let no_record = Mutex::new(None);
        peer::apply(&mut value, target, args, &mut reply, &no_record).map_err(|refusal| {
            match refusal {
                peer::Refusal::Failed(message) => Failure::Failed(message),
                peer::Refusal::Panicked { method, panic } => Failure::Panicked { method, panic },
            }
        })?;
        Ok((writes.then_some(value), reply))
    }
}

/// The encodings of the first `count` fields of `value`, in order.
pub(super) fn field_encodings<T: Shared>(
    value: &mut T,
    count: usize,
) -> Result<Vec<Vec<u8>>, ApplyError> {
    (0..count)
        .map(|index| field_encoding(value, index))
        .collect()
}

fn field_encoding<T: Shared>(value: &mut T, index: usize) -> Result<Vec<u8>, ApplyError> {
    let index = u16::try_from(index).map_err(|_| ApplyError::NoSuchTarget(u16::MAX))?;
    let mut encoding = Vec::new();
    value.apply_field(index, FieldOp::Get, &[], &mut encoding)?;
    Ok(encoding)
}

fn failed(error: ApplyError) -> Failure {
    Failure::Failed(error.to_string())
}

/// A random pause before attempt `attempt + 1`: up to 100 µs, doubling to about 13 ms, so
/// writers that keep meeting drift apart.
fn pause(attempt: u32) {
    let ceiling = 100u64 << attempt.min(7);
    let mut bytes = [0u8; 8];
    let random = getrandom::fill(&mut bytes).map_or(ceiling / 2, |()| u64::from_le_bytes(bytes));
    std::thread::sleep(Duration::from_micros(random % ceiling.max(1)));
}
