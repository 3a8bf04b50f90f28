//! What a shared value's handles say to its coordinator.
//!
//! A handle sends [`Request`]s on its process's one connection to the coordinator: a
//! [`Request::Write`] is fire-and-forget and travels only in the process's write ring (on the
//! socket it ends the connection: a write there could pass a read unseen), a
//! [`Request::Call`] is answered by exactly one [`Reply`] (a write that does not fit a ring
//! travels as a call). A process sends a call only when no other call of its is
//! unanswered (the client holds its connection until the reply arrives), so a call is always
//! the last frame of its connection until it is answered — the coordinator's read barrier
//! relies on this.

use serde::{Deserialize, Serialize};

use crate::panics::PanicReport;

/// One operation on the shared value.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<'a> {
    /// Apply and answer nothing; only in a write ring.
    Write {
        target: Target,
        #[serde(borrow, with = "serde_bytes")]
        args: &'a [u8],
    },
    /// Apply after every write the caller could have seen, and answer with a [`Reply`].
    Call {
        target: Target,
        #[serde(borrow, with = "serde_bytes")]
        args: &'a [u8],
    },
    /// Map the sender's write ring: a shared-memory region that travels with this frame's
    /// bytes (`SCM_RIGHTS`), never a path. Nothing is answered; a region that is refused ends
    /// the connection.
    AttachRing,
    /// The sender published writes in its ring while the coordinator was asleep.
    Wake,
}

/// What an operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A field's built-in operation (`share.counter += 1`, `share.results.push(x)`).
    Field {
        /// The field's position in the struct.
        index: u16,
        /// The operation.
        op: FieldOp,
    },
    /// A method of the `#[shared] impl`, by position.
    Method(u16),
    /// The whole value.
    Whole(WholeOp),
}

/// Operations on the whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WholeOp {
    /// A copy of the value.
    Get,
    /// Replace the value.
    Set,
    /// The last failure recorded by the coordinator, if any.
    LastError,
}

/// The built-in operations on fields; which ones a field supports depends on its type (see
/// [`SharedField`](crate::SharedField)). Arguments and results travel separately, encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FieldOp {
    /// Read the field (→ the field's value).
    Get,
    /// Replace the field (value).
    Set,
    /// `+=` (value).
    Add,
    /// `-=` (value).
    Sub,
    /// `*=` (value).
    Mul,
    /// `/=` (value); division by zero is a failure, not a panic.
    Div,
    /// `%=` (value).
    Rem,
    /// `&=` (value).
    BitAnd,
    /// `|=` (value).
    BitOr,
    /// `^=` (value).
    BitXor,
    /// Number of elements (→ `usize`).
    Len,
    /// Whether there are none (→ `bool`).
    IsEmpty,
    /// Remove everything.
    Clear,
    /// Whether an element or key is present (element or key → `bool`).
    Contains,
    /// Append at the end (element; a string's `push_str` takes a string).
    Push,
    /// Remove from the end (→ `Option<element>`).
    Pop,
    /// Prepend (element).
    PushFront,
    /// Remove from the front (→ `Option<element>`).
    PopFront,
    /// Insert (`(index, element)` for sequences → `()`, `(key, value)` for maps →
    /// `Option<value>`, element for sets → `bool`).
    Insert,
    /// Remove (index → element for sequences, key → `Option<value>` for maps, element →
    /// `bool` for sets).
    Remove,
    /// Append many (a sequence of elements).
    Extend,
    /// One element by index or key (→ `Option<element>`).
    GetAt,
    /// Keep the first `n` (usize).
    Truncate,
    /// Record a sample in an [`Sktimer`](crate::Sktimer) (`Duration`).
    AddTime,
    /// Statistics of an [`Sktimer`](crate::Sktimer) (→ [`TimerStats`](crate::TimerStats)).
    Stats,
    /// A percentile of an [`Sktimer`](crate::Sktimer) (`f64` → `Option<Duration>`).
    Percentile,
    /// A circuit's short (→ the sleep the caller must do, if it tripped).
    Short,
    /// A circuit's trip (→ the sleep the caller must do).
    Trip,
    /// Reset (a timer's samples; a breaking circuit's broken state, with backoff).
    Reset,
    /// A circuit's `reset_backoff`.
    ResetBackoff,
}

/// The coordinator's answer to a [`Request::Call`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The encoded return value.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The operation failed (an unsupported operation, bad arguments, an overflow); nothing
    /// was changed.
    Failed(String),
    /// A user method panicked; what it changed was undone.
    Panicked {
        /// The method, as `Type::method`.
        method: String,
        /// The panic's message, location and backtrace.
        panic: PanicReport,
    },
}

/// A [`Reply`] as the coordinator sends it, borrowing its buffers (same encoding).
#[derive(Debug, Serialize)]
pub(crate) enum ReplyRef<'a> {
    Value(#[serde(with = "serde_bytes")] &'a [u8]),
    Failed(&'a str),
    Panicked {
        method: &'a str,
        panic: &'a PanicReport,
    },
}
