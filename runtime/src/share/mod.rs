//! Typed shared state across processes.
//!
//! A [`Share<T>`] is a handle to one value of type `T` that lives in a **coordinator**, a
//! thread of the process that created the share. Every read and every write, from any
//! process, is an operation the coordinator applies to the live value; only arguments and
//! return values travel, never the whole value, and there are no copies that could go stale.
//!
//! How the parts fit:
//!
//! - [`handle`]: the public [`Share<T>`]: create, clone, send to children (it is
//!   `Serialize + Deserialize`), `stop`/`start`/`clear`, and field access through `Deref` to
//!   the proxy that `#[shared]` generates.
//! - [`field`]: [`Field<F>`], the proxy of one field (`share.counter += 1`,
//!   `share.results.push(x)`, `share.counter.get()?`), and [`SharedField`], what a field type
//!   supports on the coordinator.
//! - [`link`]: what every proxy holds: a [`Link`] to the share's backend, behind the one
//!   internal `Backend` trait (the seam where a Redis-backed share can plug in).
//! - [`client`]: the socket backend: one connection per process and share, opened on first
//!   use (in a child: after the handle arrived with the state, and again in a restarted child).
//! - [`coordinator`]: the thread that owns the value and applies every operation, on the
//!   runtime's one [`Server`](crate::transport::server::Server); [`session`] is one connection
//!   on the server's reader thread for it (forwarding calls and rings to the applying thread;
//!   its outbox finishes, on a writer thread, replies that could not go out at once), [`peer`]
//!   the sans-IO part (applying one operation).
//! - [`ring`]: the fast path of fire-and-forget writes: a ring per process in shared memory,
//!   drained by the coordinator.
//! - [`meta`]: the read/write metadata `#[shared]` computes at compile time.
//! - [`builtins`]: field support for numbers, strings, std collections, [`Sktimer`], and the
//!   circuits.
//!
//! # Ordering
//!
//! A read observes every write whose call returned before the read began, in any process.
//! Writes (`+=`, `push`, methods returning `()`) are fire-and-forget: the call returns once the
//! operation is published in the process's shared-memory ring. A write too large for the ring,
//! or from a process that could not set one up, travels as a call and returns once applied.
//! Before it applies any call, the coordinator drains every ring, so a write that returned
//! before the call was sent is applied first. Operations of one process are applied in the
//! order that process issued them.
//!
//! [`Sktimer`]: crate::Sktimer

pub(crate) mod builtins;
pub(crate) mod client;
pub(crate) mod coordinator;
pub(crate) mod field;
pub(crate) mod handle;
pub(crate) mod layout;
pub(crate) mod link;
pub(crate) mod meta;
pub(crate) mod peer;
#[cfg(all(test, any(target_os = "linux", windows)))]
mod peer_faults;
pub(crate) mod ring;
pub(crate) mod session;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::protocol::share::{FieldOp, Target};

/// Why the coordinator could not apply an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The field's type does not support the operation.
    #[error("`{op:?}` is not supported by `{type_name}`")]
    Unsupported {
        /// The operation.
        op: FieldOp,
        /// The field's type.
        type_name: &'static str,
    },
    /// The arguments or the return value could not be encoded or decoded.
    #[error("bad arguments: {0}")]
    Arguments(String),
    /// No field or method has that index (the handle was built from other code).
    #[error("no field or method number {0}")]
    NoSuchTarget(u16),
    /// The operation itself failed (an index out of range, a division by zero).
    #[error("{0}")]
    Failed(String),
}

/// A type whose values can live in a [`Share`]. `#[shared]` on a struct implements it; see
/// that attribute for the generated proxy.
///
/// The same without the macro: implement the trait by hand, with a proxy struct that holds a
/// [`Field`] per field (built with [`Field::new`]) and a dispatch from field index to
/// [`SharedField::apply`].
pub trait Shared: Serialize + DeserializeOwned + Send + 'static {
    /// What `Share<Self>` dereferences to: one [`Field`] per field, plus the methods of the
    /// `#[shared] impl`.
    type Proxy: Send + Sync + 'static;

    /// The field names, in declaration order (their index is the position).
    const FIELDS: &'static [&'static str];

    /// Builds the proxy over `link`.
    fn proxy(link: &Link) -> Self::Proxy;

    /// Applies a built-in operation to field number `index`, writing any result into `reply`.
    fn apply_field(
        &mut self,
        index: u16,
        op: FieldOp,
        args: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), ApplyError>;

    /// Calls method number `index` of the `#[shared] impl` with encoded `args`, writing its
    /// encoded return value into `reply`.
    fn apply_method(
        &mut self,
        index: u16,
        args: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<(), ApplyError>;

    /// The name of method number `index`, for error messages.
    fn method_name(index: u16) -> Option<&'static str> {
        let _ = index;
        None
    }

    /// How field number `index` is kept by a backend that keeps fields apart (the Redis
    /// share); `None` (the default) keeps it as one opaque value.
    #[doc(hidden)]
    fn field_layout(index: u16) -> Option<Layout> {
        let _ = index;
        None
    }

    /// What method number `index` reads and writes (its entry of `SHARED_META`); `None` (the
    /// default) means the whole value.
    #[doc(hidden)]
    fn method_meta(index: u16) -> Option<&'static MethodMeta> {
        let _ = index;
        None
    }
}

pub use builtins::circuit::{BreakingCircuit, Circuit};
pub use builtins::timer::TimerStats;
pub use field::{Field, SharedField, decode_args, encode_reply};
pub use handle::Share;
pub use layout::Layout;
pub use link::Link;
pub use meta::{MethodMeta, SharedMeta, WHOLE_VALUE};

/// Support for the code `#[shared]` generates. Not public API.
#[doc(hidden)]
pub mod generated {
    use std::marker::PhantomData;

    use super::ApplyError;

    /// The method table of a `#[shared] impl`, implemented by the macro.
    pub trait SharedMethods {
        /// Calls method number `index`.
        fn call_method(
            &mut self,
            index: u16,
            args: &[u8],
            reply: &mut Vec<u8>,
        ) -> Result<(), ApplyError>;
        /// The name of method number `index`.
        fn method_name(index: u16) -> Option<&'static str>;
        /// What method number `index` reads and writes.
        fn method_meta(index: u16) -> Option<&'static super::MethodMeta>;
    }

    /// A method dispatcher.
    pub type Dispatch<T> = fn(&mut T, u16, &[u8], &mut Vec<u8>) -> Result<(), ApplyError>;

    /// A method dispatcher, the lookup of method names and that of their metadata.
    pub type Table<T> = (
        Dispatch<T>,
        fn(u16) -> Option<&'static str>,
        fn(u16) -> Option<&'static super::MethodMeta>,
    );

    /// Chooses the method table of `T` when it has one (autoref specialization: the struct's
    /// expansion cannot know whether an `impl` block carries `#[shared]` too).
    pub struct MethodsOf<T>(PhantomData<fn() -> T>);

    impl<T> MethodsOf<T> {
        /// The selector.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Self(PhantomData)
        }
    }

    /// Picked when `T` has a `#[shared] impl`.
    pub trait ViaMethods<T> {
        /// The dispatcher and the name lookup.
        fn table(&self) -> Table<T>;
    }

    impl<T: SharedMethods> ViaMethods<T> for &MethodsOf<T> {
        fn table(&self) -> Table<T> {
            (T::call_method, T::method_name, T::method_meta)
        }
    }

    /// What crosses to and from the coordinator in a `#[shared]` method call.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot travel to or from a share's coordinator",
        label = "not serializable",
        note = "the arguments and return values of `#[shared]` methods must implement `Serialize` and `DeserializeOwned`"
    )]
    pub trait Travels {}
    impl<T: serde::Serialize + serde::de::DeserializeOwned> Travels for T {}

    /// Checks at compile time that `T` can travel.
    pub fn assert_travels<T: Travels>() {}

    /// Checks at compile time that `T` can be a field of a shared struct.
    pub fn assert_shared_field<T: crate::share::SharedField>() {}

    /// Chooses the [`Layout`](crate::share::Layout) of a field type: its own when it is a
    /// [`SharedField`](crate::SharedField), one opaque value otherwise (autoref
    /// specialization, so a field type that is not one gets only the struct's own error,
    /// not one more from here).
    pub struct LayoutOf<T>(PhantomData<fn() -> T>);

    impl<T> LayoutOf<T> {
        /// The selector.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Self(PhantomData)
        }
    }

    /// Picked when the field type is a `SharedField`.
    pub trait ViaSharedField {
        /// Its layout.
        fn layout(&self) -> crate::share::Layout;
    }

    impl<T: crate::share::SharedField> ViaSharedField for &LayoutOf<T> {
        fn layout(&self) -> crate::share::Layout {
            T::LAYOUT
        }
    }

    /// Picked otherwise.
    pub trait ViaOpaque {
        /// One opaque value.
        fn layout(&self) -> crate::share::Layout;
    }

    impl<T> ViaOpaque for LayoutOf<T> {
        fn layout(&self) -> crate::share::Layout {
            crate::share::Layout::VALUE
        }
    }

    /// Picked when `T` has no `#[shared] impl`.
    pub trait ViaNoMethods<T> {
        /// A dispatcher that knows no method.
        fn table(&self) -> Table<T>;
    }

    impl<T> ViaNoMethods<T> for MethodsOf<T> {
        fn table(&self) -> Table<T> {
            (
                |_, index, _, _| Err(ApplyError::NoSuchTarget(index)),
                |_| None,
                |_| None,
            )
        }
    }
}
