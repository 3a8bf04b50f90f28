//! The running image on Windows: the executable's path, the build's identity, and where code
//! lies — whether an address lies in executable memory of the same loaded module as a known
//! symbol (`VirtualQuery`: the region's allocation base is the module's base, and its pages
//! are executable).
//!
//! The identity is the CodeView record of the executable's PE debug directory (the GUID and
//! age the linker writes for its PDB: MSVC always, GNU ld with `--build-id`), read from the
//! loaded image; without one, a hash of the executable file (which Windows keeps from being
//! overwritten while it runs).

use std::ffi::c_void;

use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEMORY_BASIC_INFORMATION, PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE,
    PAGE_EXECUTE_WRITECOPY, VirtualQuery,
};

/// Whether `address` is inside executable memory of the module that holds `anchor`.
pub(crate) fn is_code_beside(anchor: usize, address: usize) -> bool {
    let (Some(module), Some(region)) = (query(anchor), query(address)) else {
        return false;
    };
    let executable =
        PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
    !module.AllocationBase.is_null()
        && region.AllocationBase == module.AllocationBase
        && region.State == MEM_COMMIT
        && region.Protect & executable != 0
}

/// What the memory manager says about the region holding `address`.
fn query(address: usize) -> Option<MEMORY_BASIC_INFORMATION> {
    // SAFETY: an all-zero structure is valid; VirtualQuery only fills it.
    let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    let size = size_of::<MEMORY_BASIC_INFORMATION>();
    // SAFETY: any address may be queried; `info` is a valid buffer of `size` bytes.
    let filled = unsafe { VirtualQuery(address as *const c_void, &mut info, size) };
    (filled == size).then_some(info)
}

/// The running executable (`current_exe`).
pub(crate) fn own_executable() -> std::io::Result<std::path::PathBuf> {
    std::env::current_exe()
}

/// The identity the linker wrote into this build: the PE CodeView GUID and age, tagged.
pub(crate) fn linker_identity() -> Option<(&'static [u8], Vec<u8>)> {
    own_codeview().map(|id| (&b"pe-codeview:"[..], id))
}

/// The CodeView GUID and age of the main executable, read from its loaded image.
fn own_codeview() -> Option<Vec<u8>> {
    // SAFETY: a null name asks for the main executable's module, which stays loaded.
    let base = unsafe { GetModuleHandleW(std::ptr::null()) };
    if base.is_null() {
        return None;
    }
    // SAFETY: the loader maps a module's headers readable at its base; the DOS header and the
    // fields read before the size of the image is known lie within the first page.
    let head = unsafe { std::slice::from_raw_parts(base.cast::<u8>(), 4096) };
    let size = image_size(head)?;
    // SAFETY: the loader maps the whole image, `SizeOfImage` bytes from its base: the headers
    // and every section, each readable.
    let image = unsafe { std::slice::from_raw_parts(base.cast::<u8>(), size) };
    codeview(image).map(<[u8]>::to_vec)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn usize_at(bytes: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u32_at(bytes, at)?).ok()
}

/// Where the optional header starts, for a PE32+ image (checked signatures and magic).
fn optional_header(image: &[u8]) -> Option<usize> {
    const PE32_PLUS: u16 = 0x20B;
    if image.get(..2)? != b"MZ" {
        return None;
    }
    let nt = usize_at(image, 0x3C)?;
    if image.get(nt..nt.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    let optional = nt.checked_add(24)?;
    (u16_at(image, optional)? == PE32_PLUS).then_some(optional)
}

/// `SizeOfImage` from a PE32+ image's headers.
fn image_size(image: &[u8]) -> Option<usize> {
    usize_at(image, optional_header(image)?.checked_add(56)?)
}

/// The GUID and age (20 bytes) of the first CodeView (`RSDS`) record in a loaded PE32+
/// image's debug directory.
fn codeview(image: &[u8]) -> Option<&[u8]> {
    const DEBUG_DIRECTORY: usize = 6;
    const CODEVIEW: u32 = 2;
    const ENTRY: usize = 28;
    let optional = optional_header(image)?;
    let directories = optional.checked_add(112)?;
    if usize_at(image, optional.checked_add(108)?)? <= DEBUG_DIRECTORY {
        return None;
    }
    let slot = directories.checked_add(DEBUG_DIRECTORY * 8)?;
    let (start, len) = (usize_at(image, slot)?, usize_at(image, slot + 4)?);
    let entries = image.get(start..start.checked_add(len)?)?;
    entries.chunks_exact(ENTRY).find_map(|entry| {
        if u32_at(entry, 12)? != CODEVIEW {
            return None;
        }
        let (size, at) = (usize_at(entry, 16)?, usize_at(entry, 20)?);
        let record = image.get(at..at.checked_add(size)?)?;
        (record.get(..4)? == b"RSDS")
            .then(|| record.get(4..24))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_modules_code_is_not_this_images() {
        let anchor = crate::sys::image_tests::anchor_address();
        // Code of another module (kernel32's) is not this image's.
        let kernel32: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
        // SAFETY: NUL-terminated names; kernel32 is loaded in every process.
        let foreign = unsafe {
            let module = GetModuleHandleW(kernel32.as_ptr());
            windows_sys::Win32::System::LibraryLoader::GetProcAddress(
                module,
                c"Sleep".as_ptr().cast(),
            )
        };
        let foreign = foreign.map(|f| f as usize).unwrap();
        assert!(!is_code_beside(anchor, foreign));
    }

    #[test]
    fn the_build_identity_is_stable_and_names_its_kind() {
        let identity = crate::sys::build_identity();
        assert!(identity.starts_with(b"pe-codeview:") || identity.starts_with(b"file-hash:"));
        assert_eq!(identity, crate::sys::build_identity());
    }

    /// A PE32+ image, laid out as loaded, whose debug directory holds `records`.
    fn image_with(records: &[(u32, &[u8])]) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[..2].copy_from_slice(b"MZ");
        image[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        image[0x80..0x84].copy_from_slice(b"PE\0\0");
        let optional = 0x80 + 24;
        image[optional..optional + 2].copy_from_slice(&0x20Bu16.to_le_bytes());
        image[optional + 56..optional + 60].copy_from_slice(&0x1000u32.to_le_bytes());
        image[optional + 108..optional + 112].copy_from_slice(&16u32.to_le_bytes());
        let slot = optional + 112 + 6 * 8;
        let (entries, mut data) = (0x400usize, 0x600usize);
        image[slot..slot + 4].copy_from_slice(&(entries as u32).to_le_bytes());
        let len = (records.len() * 28) as u32;
        image[slot + 4..slot + 8].copy_from_slice(&len.to_le_bytes());
        for (i, (kind, record)) in records.iter().enumerate() {
            let entry = entries + i * 28;
            image[entry + 12..entry + 16].copy_from_slice(&kind.to_le_bytes());
            image[entry + 16..entry + 20].copy_from_slice(&(record.len() as u32).to_le_bytes());
            image[entry + 20..entry + 24].copy_from_slice(&(data as u32).to_le_bytes());
            image[data..data + record.len()].copy_from_slice(record);
            data += record.len();
        }
        image
    }

    #[test]
    fn a_codeview_record_is_found_among_other_debug_entries() {
        let mut rsds = b"RSDS".to_vec();
        rsds.extend(1..=20u8);
        rsds.extend_from_slice(b"app.pdb\0");
        let image = image_with(&[(1, b"COFF"), (2, &rsds)]);
        assert_eq!(image_size(&image), Some(0x1000));
        assert_eq!(codeview(&image), Some(&rsds[4..24]));
        assert_eq!(
            codeview(&image_with(&[(2, b"NB10xxxxxxxxxxxxxxxxxxxx")])),
            None
        );
        assert_eq!(codeview(&image[..0x500]), None, "a cut image");
        assert_eq!(codeview(b"MZ"), None);
    }
}
