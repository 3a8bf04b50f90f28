//! The proxy of one field, and what a field's type supports on the coordinator.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::protocol::share::{FieldOp, Target};
use crate::share::ApplyError;
use crate::share::layout::Layout;
use crate::share::link::Link;

/// What a field's type can do inside a [`Share`](crate::Share): the coordinator calls
/// [`apply`](SharedField::apply) with each operation a [`Field`] proxy sends.
///
/// Numbers, `bool`, `String`, `Option<T>`, `Vec`, `VecDeque`, `HashMap`, `HashSet`,
/// `BTreeMap`, `BTreeSet`, [`Sktimer`](crate::Sktimer), [`Circuit`](crate::Circuit) and
/// [`BreakingCircuit`](crate::BreakingCircuit) implement it. For a type of your own, an empty
/// `impl SharedField for MyType {}` gives `get` and `set`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a `#[shared]` struct",
    label = "not a `SharedField`",
    note = "numbers, `bool`, `String`, `Option`, std collections, `Sktimer`, `Circuit` and `BreakingCircuit` are supported",
    note = "for a serializable type of your own, `impl skprocess::share::SharedField for {Self} {{}}` gives `get` and `set`"
)]
pub trait SharedField: Serialize + DeserializeOwned + Send + 'static {
    /// How a backend that keeps fields apart (the Redis share) stores this type: one opaque
    /// value unless the type says otherwise.
    #[doc(hidden)]
    const LAYOUT: Layout = Layout::VALUE;

    /// Applies `op` with encoded `args`, writing any result into `reply`. The default
    /// supports [`FieldOp::Get`] and [`FieldOp::Set`].
    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        get_or_set(self, op, args, reply)
    }
}

/// [`FieldOp::Get`] and [`FieldOp::Set`] for any serializable value; every other operation is
/// unsupported.
pub(crate) fn get_or_set<F: Serialize + DeserializeOwned>(
    field: &mut F,
    op: FieldOp,
    args: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), ApplyError> {
    match op {
        FieldOp::Get => encode_reply(field, reply),
        FieldOp::Set => {
            *field = decode_args(args)?;
            Ok(())
        }
        op => Err(unsupported::<F>(op)),
    }
}

pub(crate) fn unsupported<F>(op: FieldOp) -> ApplyError {
    ApplyError::Unsupported {
        op,
        type_name: std::any::type_name::<F>(),
    }
}

/// Decodes the arguments of an operation.
pub fn decode_args<A: DeserializeOwned>(args: &[u8]) -> Result<A, ApplyError> {
    crate::transport::frame::decode_owned(args).map_err(|e| ApplyError::Arguments(e.to_string()))
}

/// Encodes the result of an operation into `reply`.
pub fn encode_reply<R: Serialize + ?Sized>(
    value: &R,
    reply: &mut Vec<u8>,
) -> Result<(), ApplyError> {
    crate::transport::frame::encode_into(value, reply)
        .map_err(|e| ApplyError::Arguments(e.to_string()))
}

/// The proxy of one field of a shared value: each method is one operation on the
/// coordinator. Methods returning nothing are fire-and-forget writes; methods returning a
/// value wait for it and give `Result<_, Error>`.
///
/// Built-in operations depend on the field's type: `get`/`set` for every type, `+=`, `-=`,
/// `*=`, `/=`, `%=` (and `&=`, `|=`, `^=` for integers and `bool`) for numbers, and the
/// common methods of std collections (`push`, `pop`, `insert`, `remove`, `len`, …).
pub struct Field<F> {
    link: Link,
    index: u16,
    _type: PhantomData<fn() -> F>,
}

impl<F> fmt::Debug for Field<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("index", &self.index)
            .field("type", &std::any::type_name::<F>())
            .finish()
    }
}

impl<F: SharedField> Field<F> {
    /// The proxy of field number `index` (its position in the struct) over `link`.
    pub fn new(link: &Link, index: u16) -> Self {
        Self {
            link: link.clone(),
            index,
            _type: PhantomData,
        }
    }

    /// The field's current value: waits for every write to it that returned before this call.
    pub fn get(&self) -> Result<F, Error> {
        self.call(FieldOp::Get, &())
    }

    /// Replaces the field's value (a fire-and-forget write).
    pub fn set(&self, value: F) {
        self.write(FieldOp::Set, &value)
    }

    /// Sends `op` as a fire-and-forget write.
    pub(crate) fn write<A: Serialize + ?Sized>(&self, op: FieldOp, args: &A) {
        self.link.write(self.target(op), args)
    }

    /// Sends `op` and waits for its result.
    pub(crate) fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        op: FieldOp,
        args: &A,
    ) -> Result<R, Error> {
        self.link.call(self.target(op), args)
    }

    fn target(&self, op: FieldOp) -> Target {
        Target::Field {
            index: self.index,
            op,
        }
    }
}
