//! Where code lives: whether an address lies in an executable segment of the same loaded
//! image as a known symbol.
//!
//! Linux walks the program headers of every loaded object (`dl_iterate_phdr`), finds the
//! object whose segments hold the anchor, and checks that the address falls inside one of
//! that object's `PT_LOAD` segments marked executable. Elsewhere `dladdr` checks only that
//! both addresses belong to the same image.

/// Whether `address` is inside an executable segment of the image that holds `anchor`.
#[cfg(target_os = "linux")]
pub(crate) fn is_code_beside(anchor: usize, address: usize) -> bool {
    let mut query = Query {
        anchor,
        address,
        verdict: None,
    };
    // SAFETY: the callback only reads the headers the loader passes it, for the duration of
    // the call, and writes to `query`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(visit),
            std::ptr::from_mut(&mut query).cast::<libc::c_void>(),
        );
    }
    query.verdict.unwrap_or(false)
}

#[cfg(target_os = "linux")]
struct Query {
    anchor: usize,
    address: usize,
    /// Set by the object that holds the anchor.
    verdict: Option<bool>,
}

#[cfg(target_os = "linux")]
unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `Query` passed to `dl_iterate_phdr`, and `info` points at a valid
    // header description for the duration of this call.
    let (query, info) = unsafe { (&mut *data.cast::<Query>(), &*info) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: the loader gives `dlpi_phnum` headers starting at `dlpi_phdr`.
    let headers =
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let bias = info.dlpi_addr as usize;
    let segments = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
    let contains = |h: &libc::Elf64_Phdr, at: usize| {
        let start = bias.wrapping_add(h.p_vaddr as usize);
        let end = start.saturating_add(h.p_memsz as usize);
        (start..end).contains(&at)
    };
    if !segments.clone().any(|h| contains(h, query.anchor)) {
        return 0; // Not the anchor's image: keep looking.
    }
    let executable = segments
        .filter(|h| h.p_flags & libc::PF_X != 0)
        .any(|h| contains(h, query.address));
    query.verdict = Some(executable);
    1
}

/// Whether `address` belongs to the image that holds `anchor`.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn is_code_beside(anchor: usize, address: usize) -> bool {
    fn image_of(address: usize) -> Option<usize> {
        let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: `dladdr` only reads the loader's tables and fills `info`.
        let found = unsafe { libc::dladdr(address as *const libc::c_void, info.as_mut_ptr()) };
        // SAFETY: a non-zero return means `info` was filled.
        (found != 0).then(|| unsafe { info.assume_init() }.dli_fbase as usize)
    }
    image_of(anchor).is_some_and(|image| image_of(address) == Some(image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn anchor() -> u8 {
        std::hint::black_box(1)
    }

    #[inline(never)]
    fn other() -> u8 {
        std::hint::black_box(2)
    }

    static DATA: [u8; 64] = [0; 64];

    #[test]
    fn a_function_of_the_same_image_is_code_and_data_or_nowhere_is_not() {
        let anchor = anchor as fn() -> u8 as usize;
        assert!(is_code_beside(anchor, other as fn() -> u8 as usize));
        assert!(is_code_beside(anchor, anchor));
        assert!(!is_code_beside(anchor, 16));
        assert!(!is_code_beside(anchor, usize::MAX - 16));
        let heap = Box::new(0u64);
        assert!(!is_code_beside(anchor, std::ptr::from_ref(&*heap) as usize));
        #[cfg(target_os = "linux")]
        assert!(!is_code_beside(anchor, DATA.as_ptr() as usize));
        let _ = &DATA;
    }
}
