//! How a function travels to another process: as a `fn` pointer, sent as two offsets from a
//! base symbol of this runtime — the pointer's own, and a monomorphised trampoline's that
//! decodes the item, calls the pointer and encodes the output.
//!
//! Only `fn` pointers travel: a `fn` item or a closure that captures nothing coerces to one,
//! and a capturing closure is rustc's own error at the closure. A pointer is code and nothing
//! else, so the worker makes no value out of thin air. The offsets are valid only in the same
//! build, which the worker proves in its handshake ([`build_identity`]) before it uses any,
//! and each is checked to land in the executable code of the image holding the base symbol
//! before it is called. A function's address is only ever a code address to call, never a
//! key: identical-code folding may merge two functions into one address, and calling either
//! is then the same.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::fit_message;
use crate::protocol::pool::{FunctionOffsets, ItemFailure};
use crate::transport::frame;

pub(crate) use crate::sys::build_identity;

/// Decodes one item, calls the function at the address it is given, encodes the output.
///
/// # Safety
/// The address must be that of the `fn` pointer type the trampoline was made for.
type Trampoline = unsafe fn(usize, &[u8], &mut Vec<u8>) -> Result<(), ItemFailure>;

/// Mode of a [`Maps`](crate::Maps): each item is the function's one argument.
#[derive(Debug, Clone, Copy)]
pub struct Plain;
/// Mode of a [`Maps`](crate::Maps): each item is a tuple spread into the function's arguments.
#[derive(Debug, Clone, Copy)]
pub struct Star;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    impl Sealed for super::Star {}
}

/// How a map mode hands an item to its function, and the `fn` pointer type it takes:
/// [`Plain`] passes the item as the one argument of a `fn(A) -> R`; [`Star`] spreads a tuple
/// item into the arguments of a `fn(A, B, …) -> R` (zero to eight of them).
///
/// Functions reach other processes as `fn` pointers: a `fn` item or a closure that captures
/// nothing coerces to one; a capturing closure does not compile (send what it needs in the
/// items). With [`Star`] (and [`run`](crate::run)), a `fn` item needs a cast, `add as fn(u64,
/// u64) -> u64`, because its arity is only known from the items, which rustc reads after the
/// function; a closure needs none. Implemented by `Plain` and `Star` only.
pub trait Mode<Item, R>: sealed::Sealed {
    /// The `fn` pointer type this mode calls.
    type Function: Copy + Send + Sync;
    /// Calls `function` with `item`.
    #[doc(hidden)]
    fn call(function: Self::Function, item: Item) -> R;
    /// The code address of `function`.
    #[doc(hidden)]
    fn address(function: Self::Function) -> usize;
    /// The function at `address`.
    ///
    /// # Safety
    /// `address` must be that of a `Self::Function` ([`Mode::address`] of one, relocated).
    #[doc(hidden)]
    unsafe fn at(address: usize) -> Self::Function;
}

impl<A, R> Mode<A, R> for Plain {
    type Function = fn(A) -> R;
    fn call(function: fn(A) -> R, item: A) -> R {
        function(item)
    }
    fn address(function: fn(A) -> R) -> usize {
        function as usize
    }
    unsafe fn at(address: usize) -> fn(A) -> R {
        // SAFETY: by the caller's contract `address` is a `fn(A) -> R`; a `fn` pointer is a
        // code address of pointer size whatever its signature.
        unsafe { std::mem::transmute::<usize, fn(A) -> R>(address) }
    }
}

macro_rules! star_modes {
    ($( ($($arg:ident),*) ),* $(,)?) => {$(
        impl<Out, $($arg),*> Mode<($($arg,)*), Out> for Star {
            type Function = fn($($arg),*) -> Out;
            #[allow(non_snake_case)]
            fn call(function: Self::Function, ($($arg,)*): ($($arg,)*)) -> Out {
                function($($arg),*)
            }
            fn address(function: Self::Function) -> usize {
                function as usize
            }
            unsafe fn at(address: usize) -> Self::Function {
                // SAFETY: by the caller's contract `address` is a `Self::Function`; a `fn`
                // pointer is a code address of pointer size whatever its signature.
                unsafe { std::mem::transmute::<usize, Self::Function>(address) }
            }
        }
    )*};
}

star_modes!(
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

/// The base symbol offsets are measured from.
#[inline(never)]
fn base_symbol() -> u8 {
    std::hint::black_box(7)
}

fn base_address() -> i64 {
    base_symbol as fn() -> u8 as usize as i64
}

fn offset_of(address: usize) -> i64 {
    (address as i64).wrapping_sub(base_address())
}

/// Where `function` and its trampoline lie, as offsets valid in any process of this build.
pub(crate) fn offsets<M, Item, R>(function: M::Function) -> FunctionOffsets
where
    M: Mode<Item, R>,
    Item: DeserializeOwned,
    R: Serialize,
{
    let trampoline: Trampoline = call::<M, Item, R>;
    FunctionOffsets {
        trampoline: offset_of(trampoline as usize),
        function: offset_of(M::address(function)),
    }
}

/// The address at `offset` from the base symbol, once it is checked to be code of the image
/// that holds the base symbol; otherwise why not.
fn code_at(offset: i64) -> Result<usize, String> {
    let address = base_address().wrapping_add(offset) as usize;
    if !crate::sys::image::is_code_beside(base_address() as usize, address) {
        return Err(format!(
            "the function offset {offset} does not land in this executable's code"
        ));
    }
    Ok(address)
}

/// A function that came from another process, with its trampoline: ready to call on items.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Callable {
    trampoline: Trampoline,
    function: usize,
}

impl Callable {
    /// Decodes `input`, calls the function, encodes its output into `output`; a panic is the
    /// item's failure, with its text.
    pub(crate) fn call(&self, input: &[u8], output: &mut Vec<u8>) -> Result<(), ItemFailure> {
        // SAFETY: `resolve` made this pair from the offsets of one `offsets` call, whose
        // trampoline was made for the type of the function it was given.
        unsafe { (self.trampoline)(self.function, input, output) }
    }
}

/// The function and trampoline at `offsets`, once both addresses are checked to be code of
/// the image that holds the base symbol; otherwise why not.
///
/// # Safety
/// `offsets` must come from [`offsets`] in a process of this same build (checked with
/// [`build_identity`] in the worker's handshake). The segment check catches an offset that
/// points outside this image's code, not one that points at other code inside it.
pub(crate) unsafe fn resolve(offsets: FunctionOffsets) -> Result<Callable, String> {
    let trampoline = code_at(offsets.trampoline)?;
    let function = code_at(offsets.function)?;
    // SAFETY: by the caller's contract, `trampoline` is a `Trampoline` of this very build,
    // relocated by the same load bias as the base symbol, and it lies in executable code of
    // the base symbol's image (checked above).
    let trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(trampoline) };
    Ok(Callable {
        trampoline,
        function,
    })
}

/// Calls the `M::Function` at `function` on the decoded item and encodes the output into
/// `output`; a panic is the item's failure, with its text.
///
/// # Safety
/// `function` must be the address of an `M::Function`.
unsafe fn call<M, Item, R>(
    function: usize,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<(), ItemFailure>
where
    M: Mode<Item, R>,
    Item: DeserializeOwned,
    R: Serialize,
{
    let item: Item =
        frame::decode_owned(input).map_err(|e| ItemFailure::Decode(fit_message(e.to_string())))?;
    // SAFETY: by the caller's contract.
    let function = unsafe { M::at(function) };
    let value = catch_unwind(AssertUnwindSafe(|| M::call(function, item)))
        .map_err(|payload| ItemFailure::Panicked(Box::new(crate::panics::caught(&*payload))))?;
    frame::encode_into(&value, output).map_err(|e| ItemFailure::Encode(fit_message(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        x * 2
    }

    #[test]
    fn an_offset_outside_the_code_is_refused_before_any_call() {
        static NOT_CODE: [u8; 16] = [0xcc; 16];
        let data = offset_of(NOT_CODE.as_ptr() as usize);
        let good = offsets::<Plain, u64, u64>(double);
        for offset in [data, i64::MAX / 2, -base_address()] {
            for bad in [
                FunctionOffsets {
                    trampoline: offset,
                    ..good
                },
                FunctionOffsets {
                    function: offset,
                    ..good
                },
            ] {
                // SAFETY: the function under test refuses these offsets; none is ever called.
                let refused = unsafe { resolve(bad) };
                assert!(refused.is_err(), "{bad:?} was accepted");
            }
        }
    }

    #[test]
    fn a_function_round_trips_through_its_offsets() {
        // SAFETY: the offsets were taken in this process.
        let callable = unsafe { resolve(offsets::<Plain, u64, u64>(double)) }.unwrap();
        let mut output = Vec::new();
        callable
            .call(&frame::encode(&21u64).unwrap(), &mut output)
            .unwrap();
        assert_eq!(frame::decode_owned::<u64>(&output).unwrap(), 42);
        let add: fn(u64, u64) -> u64 = |a, b| a + b;
        // SAFETY: the offsets were taken in this process.
        let callable = unsafe { resolve(offsets::<Star, (u64, u64), u64>(add)) }.unwrap();
        callable
            .call(&frame::encode(&(2u64, 3u64)).unwrap(), &mut output)
            .unwrap();
        assert_eq!(frame::decode_owned::<u64>(&output).unwrap(), 5);
    }

    #[test]
    fn a_panic_is_the_items_failure_with_its_text() {
        let picky: fn(u64) -> u64 = |x| if x == 3 { panic!("no threes") } else { x };
        // SAFETY: the offsets were taken in this process.
        let callable = unsafe { resolve(offsets::<Plain, u64, u64>(picky)) }.unwrap();
        let mut output = Vec::new();
        let failure = callable
            .call(&frame::encode(&3u64).unwrap(), &mut output)
            .unwrap_err();
        assert!(matches!(failure, ItemFailure::Panicked(panic) if panic.message == "no threes"));
        let failure = callable.call(&[0xff, 0xff], &mut output).unwrap_err();
        assert!(matches!(failure, ItemFailure::Decode(_)));
    }

    #[test]
    fn this_build_has_an_identity() {
        let identity = build_identity();
        assert!(identity.len() > 10);
        assert_eq!(identity, build_identity());
    }
}
