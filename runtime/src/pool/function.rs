//! What a pool can run without annotation, and how a worker finds it: a monomorphised
//! trampoline per function type, sent as its offset from a base symbol of this runtime.
//!
//! Only zero-sized function types are accepted (`fn` items and closures that capture nothing),
//! so the worker can conjure the function from its type alone. The offset is valid only in the
//! same build, which the worker proves in its handshake ([`build_identity`]) before it uses
//! any. A function's address is only ever a code address to call, never a key: identical-code
//! folding may merge two functions into one address, and calling either is then the same.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child::engine::panic_message;
use crate::protocol::fit_message;
use crate::protocol::pool::ItemFailure;
use crate::transport::frame;

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

/// Identifies this build: its ELF GNU build-id when the linker wrote one, otherwise a hash
/// of the executable file (computed once). Two processes with the same identity run the same
/// code at the same offsets.
pub(crate) fn build_identity() -> &'static [u8] {
    static IDENTITY: OnceLock<Vec<u8>> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let mut identity = Vec::new();
        match gnu_build_id() {
            Some(id) => {
                identity.extend_from_slice(b"gnu-build-id:");
                identity.extend_from_slice(&id);
            }
            None => {
                identity.extend_from_slice(b"file-hash:");
                identity.extend_from_slice(&executable_hash().to_le_bytes());
            }
        }
        identity
    })
}

/// A hash of the running executable's file; 0 when it cannot be read (then every worker of
/// this parent agrees, and a rebuilt binary is still told apart by its build-id on Linux).
fn executable_hash() -> u64 {
    use std::hash::Hasher;
    use std::io::Read;
    let path = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        match std::env::current_exe() {
            Ok(path) => path,
            Err(_) => return 0,
        }
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    // Fixed keys: the same bytes hash the same in every process of this build.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => hasher.write(&buffer[..n]),
        }
    }
    hasher.finish()
}

/// The main executable's `NT_GNU_BUILD_ID` note, read from its loaded note segments.
#[cfg(target_os = "linux")]
fn gnu_build_id() -> Option<Vec<u8>> {
    use std::ffi::c_void;
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` for the duration of the call, and `data`
        // is the `Option<Vec<u8>>` given to `dl_iterate_phdr` below.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<Option<Vec<u8>>>()) };
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of the loaded object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        for header in headers.iter().filter(|h| h.p_type == libc::PT_NOTE) {
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            // SAFETY: a PT_NOTE segment of a loaded object is mapped and readable for its
            // memory size.
            let notes =
                unsafe { std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize) };
            if let Some(id) = find_build_id(notes) {
                *found = Some(id.to_vec());
                break;
            }
        }
        1 // The first object is the main executable: stop here.
    }
    let mut found: Option<Vec<u8>> = None;
    // SAFETY: `first_object` matches the callback type and only uses `found` as documented.
    unsafe { libc::dl_iterate_phdr(Some(first_object), (&raw mut found).cast()) };
    found
}

#[cfg(not(target_os = "linux"))]
fn gnu_build_id() -> Option<Vec<u8>> {
    None
}

/// The descriptor of the first `GNU` note of type 3 (`NT_GNU_BUILD_ID`) in `notes`.
/// Used by the Linux `gnu_build_id`; its unit test runs on every platform.
#[cfg(any(target_os = "linux", test))]
fn find_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let word = |bytes: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let name_size = word(notes, 0)? as usize;
        let desc_size = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let name_end = 12usize.checked_add(align(name_size)?)?;
        let desc_end = name_end.checked_add(align(desc_size)?)?;
        let name = notes.get(12..12 + name_size)?;
        let desc = notes.get(name_end..name_end.checked_add(desc_size)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(desc_end..)?;
    }
    None
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

    #[test]
    fn a_build_id_note_is_found_among_others() {
        let mut notes = Vec::new();
        for (name, kind, desc) in [
            (&b"Xen\0"[..], 1u32, &[9u8, 9][..]),
            (b"GNU\0", 3, &[1, 2, 3, 4, 5]),
        ] {
            notes.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
            notes.extend_from_slice(&kind.to_ne_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        }
        assert_eq!(find_build_id(&notes), Some(&[1u8, 2, 3, 4, 5][..]));
        assert_eq!(find_build_id(&notes[..20]), None);
    }
}
