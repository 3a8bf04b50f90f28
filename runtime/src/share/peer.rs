//! The sans-IO part of the coordinator: applying one operation to the value, tested here
//! without sockets or threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use crate::protocol::share::{Target, WholeOp};
use crate::share::Shared;
use crate::share::field::{decode_args, encode_reply};

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
