//! [`ProcessTypes`]: the part of a process type that both sides of the boundary are typed by —
//! its state, its output, its messages and its key. A leaf below `parent/` and `child/`:
//! [`Handle`](crate::Handle) and [`Ctx`](crate::Ctx) are generic over it, so neither imports
//! [`Process`](crate::Process), whose hooks take a `Ctx` and whose `start` returns a `Handle`
//! (that trait sits above both, in `process.rs`, and implements this one for every type).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::message::Message;

/// The types a process exchanges with its parent, and its registry key.
///
/// Implemented for every [`Process`](crate::Process) (by a blanket implementation in the
/// runtime; it cannot be implemented by hand). [`Handle`](crate::Handle) and
/// [`Ctx`](crate::Ctx) are typed by it: `Handle<P>` for any `P: Process` is the same as before,
/// and `P::Output`, `P::Inbox` and `P::Outbox` are `Process`'s own.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process type",
    label = "expected a type whose `impl` block carries `#[skprocess]`",
    note = "annotate the type's `impl` block with `#[skprocess]` (or implement `Process` and call `skprocess::register!`)"
)]
pub trait ProcessTypes:
    Serialize + DeserializeOwned + Send + Sized + 'static + sealed::Sealed
{
    /// [`Process::Output`](crate::Process::Output).
    type Output: Message;
    /// [`Process::Inbox`](crate::Process::Inbox).
    type Inbox: Message;
    /// [`Process::Outbox`](crate::Process::Outbox).
    type Outbox: Message;
    /// [`Process::KEY`](crate::Process::KEY).
    const KEY: &'static str;
    /// [`Process::HAS_ERROR_HOOK`](crate::Process::HAS_ERROR_HOOK).
    const HAS_ERROR_HOOK: bool;
}

/// Keeps [`ProcessTypes`] to the blanket implementation in `process.rs`.
pub(crate) mod sealed {
    /// Implemented for every `Process`, and nothing else.
    pub trait Sealed {}
}
