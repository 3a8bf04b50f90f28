//! The running image: the executable's path, the build's identity, and where code lives —
//! whether an address lies in an executable segment of the same loaded image as a known
//! symbol.
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

/// The running executable: `/proc/self/exe` on Linux, which still names the running code
/// when the file was replaced by a rebuild; `current_exe()` elsewhere.
pub(crate) fn own_executable() -> std::io::Result<std::path::PathBuf> {
    if cfg!(target_os = "linux") {
        return Ok("/proc/self/exe".into());
    }
    std::env::current_exe()
}

/// The identity the linker wrote into this build: its ELF GNU build-id (Linux), tagged.
pub(crate) fn linker_identity() -> Option<(&'static [u8], Vec<u8>)> {
    gnu_build_id().map(|id| (&b"gnu-build-id:"[..], id))
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
