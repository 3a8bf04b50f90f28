//! What a pool can run without annotation, and how a worker finds it: a monomorphised
//! trampoline per function type, sent as its offset from a base symbol of this runtime.
//!
//! Only zero-sized function types are accepted (`fn` items and closures that capture nothing),
//! so the worker can conjure the function from its type alone. The offset is valid only in the
//! same build, which the worker proves in its handshake ([`build_identity`]) before it uses
//! any. A function's address is only ever a code address to call, never a key: identical-code
//! folding may merge two functions into one address, and calling either is then the same.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child::engine::panic_message;
use crate::protocol::fit_message;
use crate::protocol::pool::ItemFailure;
use crate::transport::frame;

pub(crate) use crate::sys::build_identity;

/// Decodes one item, calls the function, encodes the output into the buffer.
pub(crate) type Trampoline = fn(&[u8], &mut Vec<u8>) -> Result<(), ItemFailure>;

/// The base symbol offsets are measured from.
#[inline(never)]
fn base_symbol() -> u8 {
    std::hint::black_box(7)
}

fn base_address() -> i64 {
    base_symbol as fn() -> u8 as usize as i64
}

/// The offset of `trampoline` from the base symbol, valid in any process of this build.
pub(crate) fn offset_of(trampoline: Trampoline) -> i64 {
    (trampoline as usize as i64).wrapping_sub(base_address())
}

/// The trampoline at `offset` from the base symbol, once the address it names is checked to
/// be code of the image that holds the base symbol; otherwise why not.
///
/// # Safety
/// `offset` must come from [`offset_of`] in a process of this same build (checked with
/// [`build_identity`] in the worker's handshake). The segment check catches an offset that
/// points outside this image's code, not one that points at other code inside it.
pub(crate) unsafe fn trampoline_at(offset: i64) -> Result<Trampoline, String> {
    let address = base_address().wrapping_add(offset) as usize;
    if !crate::sys::image::is_code_beside(base_address() as usize, address) {
        return Err(format!(
            "the function offset {offset} does not land in this executable's code"
        ));
    }
    // SAFETY: by the caller's contract, `address` is a `Trampoline` of this very build,
    // relocated by the same load bias as the base symbol, and it lies in executable code of
    // the base symbol's image (checked above).
    Ok(unsafe { std::mem::transmute::<usize, Trampoline>(address) })
}

/// Makes the value of a zero-sized function type.
pub(crate) fn conjure<F: Copy>() -> F {
    assert_zero_sized::<F>();
    // SAFETY: `F` is zero-sized (checked above at compile time) and `Copy`, so it has no
    // bytes, no drop glue and no invariant a zeroed value could break; function items and
    // non-capturing closures are such types.
    unsafe { std::mem::zeroed() }
}

/// Fails at compile time when `F` captures anything: the process that runs it makes the
/// function from its type alone. One message for every API that sends a function (`Pool`,
/// `run`, `WorkerResource`, `ProcessQueue`), so a misuse is reported once.
pub(crate) const fn assert_zero_sized<F>() {
    const {
        assert!(
            size_of::<F>() == 0,
            "a function that runs in another process must not capture anything: pass a `fn` \
             item or a closure that captures nothing, and send what it needs as its arguments \
             (pool items, `run`'s `args`, the data of a call)"
        )
    };
}

/// Calls `F` on the decoded `A` and encodes the output into `output`; a panic is the item's
/// failure, with its text.
pub(crate) fn call<F, A, R>(input: &[u8], output: &mut Vec<u8>) -> Result<(), ItemFailure>
where
    F: Fn(A) -> R + Copy,
    A: DeserializeOwned,
    R: Serialize,
{
    let argument: A =
        frame::decode_owned(input).map_err(|e| ItemFailure::Decode(fit_message(e.to_string())))?;
    let function: F = conjure();
    let value = catch_unwind(AssertUnwindSafe(|| function(argument)))
        .map_err(|payload| ItemFailure::Panicked(fit_message(panic_message(&*payload))))?;
    frame::encode_into(&value, output).map_err(|e| ItemFailure::Encode(fit_message(e.to_string())))
}

/// Calls `F` with the fields of the decoded tuple `T` as its arguments (`star()`).
pub(crate) fn call_spread<F, T>(input: &[u8], output: &mut Vec<u8>) -> Result<(), ItemFailure>
where
    F: Spread<T>,
    T: DeserializeOwned,
    F::Output: Serialize,
{
    let arguments: T =
        frame::decode_owned(input).map_err(|e| ItemFailure::Decode(fit_message(e.to_string())))?;
    let function: F = conjure();
    let value = catch_unwind(AssertUnwindSafe(|| function.spread(arguments)))
        .map_err(|payload| ItemFailure::Panicked(fit_message(panic_message(&*payload))))?;
    frame::encode_into(&value, output).map_err(|e| ItemFailure::Encode(fit_message(e.to_string())))
}

/// A function that takes the fields of the tuple `Args` as its arguments: what
/// [`Maps::star`](crate::Pool::star) maps. Implemented for functions and closures of zero to
/// eight arguments.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be called with the fields of `{Args}` as its arguments",
    label = "the function's parameters must match the item's tuple fields, in number and type",
    note = "with `star()`, each item is a tuple and its fields are the function's arguments, in order"
)]
pub trait Spread<Args>: Copy + Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with the fields of `args`.
    fn spread(&self, args: Args) -> Self::Output;
}

macro_rules! spread_impls {
    ($( ($($arg:ident),*) ),* $(,)?) => {$(
        impl<Func, Out, $($arg),*> Spread<($($arg,)*)> for Func
        where
            Func: Fn($($arg),*) -> Out + Copy + Send + Sync + 'static,
        {
            type Output = Out;
            #[allow(non_snake_case)]
            fn spread(&self, ($($arg,)*): ($($arg,)*)) -> Out {
                self($($arg),*)
            }
        }
    )*};
}

spread_impls!(
    (),
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, G),
    (A, B, C, D, E, G, H),
    (A, B, C, D, E, G, H, J),
);

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        x * 2
    }

    #[test]
    fn an_offset_outside_the_code_is_refused_before_any_call() {
        static NOT_CODE: [u8; 16] = [0xcc; 16];
        let data = (NOT_CODE.as_ptr() as usize as i64).wrapping_sub(base_address());
        for offset in [data, i64::MAX / 2, -base_address()] {
            // SAFETY: the function under test refuses these offsets; none is ever called.
            let refused = unsafe { trampoline_at(offset) };
            assert!(refused.is_err(), "offset {offset} was accepted");
        }
    }

    #[test]
    fn a_trampoline_round_trips_through_its_offset() {
        let offset = offset_of(call_item_double);
        // SAFETY: the offset was taken in this process.
        let trampoline = unsafe { trampoline_at(offset) }.unwrap();
        let mut output = Vec::new();
        trampoline(&frame::encode(&21u64).unwrap(), &mut output).unwrap();
        assert_eq!(frame::decode_owned::<u64>(&output).unwrap(), 42);
    }

    fn call_item_double(input: &[u8], output: &mut Vec<u8>) -> Result<(), ItemFailure> {
        fn with<F: Fn(u64) -> u64 + Copy>(_: F) -> Trampoline {
            call::<F, u64, u64>
        }
        with(double)(input, output)
    }

    #[test]
    fn a_panic_is_the_items_failure_with_its_text() {
        let trampoline: Trampoline = {
            fn with<F: Fn(u64) -> u64 + Copy>(_: F) -> Trampoline {
                call::<F, u64, u64>
            }
            with(|x: u64| if x == 3 { panic!("no threes") } else { x })
        };
        let mut output = Vec::new();
        let failure = trampoline(&frame::encode(&3u64).unwrap(), &mut output).unwrap_err();
        assert_eq!(failure, ItemFailure::Panicked("no threes".into()));
        let failure = trampoline(&[0xff, 0xff], &mut output).unwrap_err();
        assert!(matches!(failure, ItemFailure::Decode(_)));
    }

    #[test]
    fn this_build_has_an_identity() {
        let identity = build_identity();
        assert!(identity.len() > 10);
        assert_eq!(identity, build_identity());
    }
}
