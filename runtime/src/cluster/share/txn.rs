//! Optimistic transactions: an operation with no native command — a `#[shared]` method, a
//! field operation the server has no command for, the whole value — runs in this process on
//! a copy of the value read from the server, with the local share's own code
//! ([`peer::apply`]), and its writes go back only if nothing it read changed meanwhile.
//!
//! `WATCH` the share's key and the fields the operation reads (for a method, its read set in
//! `SHARED_META`), read those fields, rebuild the value, apply; a failure or a panic ends the
//! transaction with nothing sent (`UNWATCH`), so it changes nothing. Otherwise `MULTI`, write
//! the fields of its write set whole, `EXEC`: a nil answer means a watched key changed, and
//! the operation runs again on fresh values with a growing random pause — at most
//! [`ATTEMPTS`] times for a call (its caller gets the error), and for a write until
//! [`WRITE_PATIENCE`] has passed (a write has no caller to tell). An operation that writes
//! nothing reads in one `MULTI` (a consistent snapshot) and needs no retry.
//!
//! **Only what is read is fetched.** The fields an operation does not read still have to be
//! there to rebuild the value; they come from the encodings this process saw last
//! ([`FieldCache`]), which the operation neither reads nor writes, so their age does not
//! matter. This keeps a method on one counter from fetching (and decoding) a share's large
//! lists on every attempt — the window in which other writers make it conflict.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use crate::cluster::link;
use crate::cluster::share::failure::{Failure, ShareKeys};
use crate::cluster::share::store;
use crate::protocol::share::{FieldOp, Target};
use crate::share::link::Deadline;
use crate::share::peer::{self, describe};
use crate::share::{ApplyError, Layout, Shared};
use crate::transport::frame;

/// How many times a call runs before conflicts make it give up.
pub(super) const ATTEMPTS: u32 = 64;

/// How long a write keeps running again under conflicts before it gives up (then the next
/// call reports it lost).
pub(super) const WRITE_PATIENCE: Duration = Duration::from_secs(60);

/// The encoding of each field as this process last read or wrote it; `None` until then.
pub(super) type FieldCache = Mutex<Vec<Option<Vec<u8>>>>;

/// One operation's transaction: the share's keys and layouts, the fields (by index) it
/// reads and writes, and this process's last encodings of the others.
pub(super) struct Plan<'a> {
    pub(super) keys: &'a ShareKeys,
    pub(super) layouts: &'a [Layout],
    pub(super) reads: Vec<usize>,
    pub(super) writes: Vec<usize>,
    pub(super) cache: &'a FieldCache,
    /// The handle's time limit, if any: no attempt starts after it.
    pub(super) deadline: Option<Deadline>,
}

/// How long an operation keeps running again when other writers change what it read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Patience {
    /// A call: [`ATTEMPTS`] runs.
    Attempts,
    /// A write: until [`WRITE_PATIENCE`] has passed.
    Until(Instant),
}

impl Patience {
    /// A write's patience, from now.
    pub(super) fn for_write() -> Self {
        Instant::now()
            .checked_add(WRITE_PATIENCE)
            .map_or(Self::Attempts, Self::Until)
    }

    fn allows(self, attempt: u32) -> bool {
        match self {
            Self::Attempts => attempt < ATTEMPTS,
            Self::Until(at) => attempt == 0 || Instant::now() < at,
        }
    }
}

impl Plan<'_> {
    /// Runs `target` with `args` and returns its encoded result.
    pub(super) fn run<T: Shared>(
        &self,
        c: &mut Connection,
        target: Target,
        args: &[u8],
        patience: Patience,
    ) -> Result<Vec<u8>, Failure> {
        let mut attempt = 0u32;
        while patience.allows(attempt) {
            if attempt > 0 && self.deadline.is_some_and(|d| d.passed()) {
                return Err(Failure::Expired);
            }
            if let Some(reply) = self.attempt::<T>(c, target, args)? {
                return Ok(reply);
            }
            pause(attempt);
            attempt = attempt.saturating_add(1);
        }
        Err(Failure::Contended(format!(
            "{} gave up after {attempt} attempts: other writers kept changing the fields it reads",
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
        let mut written = Vec::with_capacity(self.writes.len());
        for &index in &self.writes {
            let (Some(key), Some(layout)) = (self.keys.fields.get(index), self.layouts.get(index))
            else {
                continue;
            };
            let encoding = field_encoding(&mut value, index).map_err(failed)?;
            let parts = (layout.split)(&encoding).map_err(failed)?;
            store::write_field(&mut pipe, layout.kind, key, parts);
            written.push((index, encoding));
        }
        let done: Value = pipe.query(c)?;
        if done == Value::Nil {
            return Ok(None);
        }
        self.remember(written);
        Ok(Some(reply))
    }

    /// Reads the fields it must (see the module's notes), rebuilds the value and applies the
    /// operation; the value comes back only when there are writes to send.
    fn read_and_apply<T: Shared>(
        &self,
        c: &mut Connection,
        target: Target,
        args: &[u8],
        writes: bool,
    ) -> Result<(Option<T>, Vec<u8>), Failure> {
        let fetched = self.to_fetch();
        let mut pipe = redis::pipe();
        if !writes {
            pipe.atomic();
        }
        pipe.cmd("EXISTS").arg(&self.keys.share);
        for &index in &fetched {
            if let (Some(key), Some(layout)) =
                (self.keys.fields.get(index), self.layouts.get(index))
            {
                store::read_field(&mut pipe, layout.kind, key);
            }
        }
        let answers: Value = pipe.query(c)?;
        let answers = link::items(&answers);
        let Some((exists, answers)) = answers.split_first() else {
            return Err(Failure::Gone);
        };
        if link::int(exists) != Some(1) || answers.len() != fetched.len() {
            return Err(Failure::Gone);
        }
        let mut fresh = Vec::with_capacity(fetched.len());
        for (&index, answer) in fetched.iter().zip(answers) {
            let layout = self.layouts.get(index).ok_or(Failure::Gone)?;
            let parts = store::parse_field(layout.kind, answer).ok_or(Failure::Gone)?;
            fresh.push((index, (layout.join)(parts).map_err(failed)?));
        }
        let encoding = self.whole(&fresh)?;
        self.remember(fresh);
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

    /// The fields to read from the server: those the operation reads, and any this process
    /// has not seen yet.
    fn to_fetch(&self) -> Vec<usize> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (0..self.layouts.len())
            .filter(|index| {
                self.reads.contains(index) || cache.get(*index).is_none_or(Option::is_none)
            })
            .collect()
    }

    /// Keeps `fields` (index, encoding) as this process's last encodings of them.
    fn remember(&self, fields: Vec<(usize, Vec<u8>)>) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < self.layouts.len() {
            cache.resize(self.layouts.len(), None);
        }
        for (index, encoding) in fields {
            if let Some(slot) = cache.get_mut(index) {
                *slot = Some(encoding);
            }
        }
    }

    /// The encoding of the whole value: the fields just `fetched`, and this process's last
    /// encodings of the others (every field never seen before was fetched, so none is
    /// missing).
    fn whole(&self, fetched: &[(usize, Vec<u8>)]) -> Result<Vec<u8>, Failure> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut whole = Vec::new();
        for index in 0..self.layouts.len() {
            let field = match fetched.iter().find(|(at, _)| *at == index) {
                Some((_, encoding)) => Some(encoding.as_slice()),
                None => cache.get(index).and_then(Option::as_deref),
            };
            whole.extend_from_slice(field.ok_or(Failure::Gone)?);
        }
        Ok(whole)
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
