//! The sans-IO part of the coordinator: applying one operation to the value, tested here
//! without sockets or threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use crate::panics::{At, PanicReport};
use crate::protocol::share::{Target, WholeOp};
use crate::share::field::{decode_args, encode_reply};
use crate::share::meta::WHOLE_VALUE;
use crate::share::{FieldOp, Shared};
use crate::transport::frame;

/// Why an operation was not applied. Either way the value is as it was before it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The operation failed (an unsupported operation, bad arguments, an overflow); the text
    /// names it.
    Failed(String),
    /// A user method panicked; its changes were undone.
    Panicked {
        /// The method, as `Type::method`.
        method: String,
        /// The panic's message, location and backtrace.
        panic: PanicReport,
    },
}

impl std::fmt::Display for Refusal {
    /// The text the share records as its last error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Failed(message) => f.write_str(message),
            Refusal::Panicked { method, panic } => f.write_str(&panicked_text(method, panic)),
        }
    }
}

/// What a share records as its last error when `method` panicked.
pub(crate) fn panicked_text(method: &str, panic: &PanicReport) -> String {
    format!(
        "`{method}` panicked{}: {}",
        At(&panic.location),
        panic.message
    )
}

/// Applies one operation to `value`, writing any result into `reply`. A panic in user code is
/// caught and becomes a [`Refusal::Panicked`]; what the method changed before it panicked is
/// undone first, so a failed operation changes nothing.
pub(crate) fn apply<T: Shared>(
    value: &mut T,
    target: Target,
    args: &[u8],
    reply: &mut Vec<u8>,
    last_error: &Mutex<Option<String>>,
) -> Result<(), Refusal> {
    reply.clear();
    let snapshot = match target {
        Target::Method(index) => Snapshot::take(value, index),
        _ => Snapshot::Nothing,
    };
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
        Ok(Err(error)) => Err(Refusal::Failed(format!(
            "{}: {error}",
            describe::<T>(target)
        ))),
        Err(payload) => {
            let panic = crate::panics::caught(&*payload);
            // The payload may own anything, and its drop may panic too: drop it here.
            drop(catch_unwind(AssertUnwindSafe(|| drop(payload))));
            reply.clear();
            snapshot.restore(value);
            Err(Refusal::Panicked {
                method: method_path::<T>(target),
                panic,
            })
        }
    }
}

/// What a method may change, encoded before it runs, so a panic can be undone: the fields of
/// its write set (`SHARED_META`), or the whole value when the set is unknown or is the whole.
enum Snapshot {
    /// A read (`&self`): nothing to undo.
    Nothing,
    /// The encodings of these fields.
    Fields(Vec<(u16, Vec<u8>)>),
    /// The encoding of the whole value.
    Whole(Vec<u8>),
}

impl Snapshot {
    fn take<T: Shared>(value: &mut T, method: u16) -> Snapshot {
        let meta = T::method_meta(method);
        if meta.is_some_and(|meta| !meta.is_write) {
            return Snapshot::Nothing;
        }
        let fields = meta
            .filter(|meta| !meta.writes.contains(&WHOLE_VALUE))
            .and_then(|meta| {
                meta.writes
                    .iter()
                    .map(|name| field_encoding(value, name))
                    .collect::<Option<Vec<_>>>()
            });
        match fields {
            Some(fields) => Snapshot::Fields(fields),
            // A value that does not encode cannot be undone; it was not changed by a read.
            None => frame::encode(&*value).map_or(Snapshot::Nothing, Snapshot::Whole),
        }
    }

    /// Puts back what was taken. A field type whose own `Set` fails keeps the method's
    /// changes (a hand-written `SharedField` that refuses `Set`).
    fn restore<T: Shared>(self, value: &mut T) {
        let mut scratch = Vec::new();
        match self {
            Snapshot::Nothing => {}
            Snapshot::Fields(fields) => {
                for (index, encoding) in fields {
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        value.apply_field(index, FieldOp::Set, &encoding, &mut scratch)
                    }));
                }
            }
            Snapshot::Whole(encoding) => {
                if let Ok(before) = frame::decode_owned::<T>(&encoding) {
                    *value = before;
                }
            }
        }
    }
}

/// The field called `name` and its encoding, when the field can give one.
fn field_encoding<T: Shared>(value: &mut T, name: &str) -> Option<(u16, Vec<u8>)> {
    let index = T::FIELDS.iter().position(|field| *field == name)?;
    let index = u16::try_from(index).ok()?;
    let mut encoding = Vec::new();
    let got = catch_unwind(AssertUnwindSafe(|| {
        value.apply_field(index, FieldOp::Get, &[], &mut encoding)
    }));
    matches!(got, Ok(Ok(()))).then_some((index, encoding))
}

/// `Type::method` for a method target (other targets are named as `describe` names them).
fn method_path<T: Shared>(target: Target) -> String {
    let type_name = std::any::type_name::<T>();
    let type_name = type_name.rsplit("::").next().unwrap_or(type_name);
    match target {
        Target::Method(index) => format!("{type_name}::{}", T::method_name(index).unwrap_or("?")),
        other => describe::<T>(other),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame;

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
