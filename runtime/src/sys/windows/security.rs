//! The security of every pipe the runtime creates: a protected DACL that grants access to the
//! current user alone (`D:P(A;;GA;;;<user SID>)`), so no other account — not even one that
//! guesses the name — can connect or create an instance of the same name. Built once per
//! process and kept for its life.

use std::io;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// A security descriptor that lives as long as the process (never freed).
struct Descriptor(PSECURITY_DESCRIPTOR);

// SAFETY: the descriptor is immutable after it is built and only ever read by the OS.
unsafe impl Send for Descriptor {}
// SAFETY: as above.
unsafe impl Sync for Descriptor {}

/// Security attributes for a pipe only the current user may open, not inheritable.
pub(super) fn current_user_only() -> io::Result<SECURITY_ATTRIBUTES> {
    static DESCRIPTOR: OnceLock<Result<Descriptor, String>> = OnceLock::new();
    let descriptor = DESCRIPTOR.get_or_init(|| build().map_err(|e| e.to_string()));
    match descriptor {
        Ok(descriptor) => Ok(SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor.0,
            bInheritHandle: 0,
        }),
        Err(e) => Err(io::Error::other(format!(
            "cannot build a current-user security descriptor: {e}"
        ))),
    }
}

fn build() -> io::Result<Descriptor> {
    let sid = user_sid_string()?;
    let sddl: Vec<u16> = format!("D:P(A;;GA;;;{sid})")
        .encode_utf16()
        .chain(Some(0))
        .collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; the call allocates the descriptor and writes its
    // address into `descriptor`.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Descriptor(descriptor))
}

/// The current user's SID as a string (`S-1-5-21-…`).
fn user_sid_string() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; `token` receives a handle closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let sid = token_user_sid_string(token);
    // SAFETY: `token` was opened above and is closed once.
    unsafe { CloseHandle(token) };
    sid
}

fn token_user_sid_string(token: HANDLE) -> io::Result<String> {
    // TOKEN_USER and the SID it points to; u64 for the structure's alignment.
    let mut buffer = [0u64; 64];
    let mut needed = 0u32;
    // SAFETY: `buffer` is writable for the size passed.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            size_of_val(&buffer) as u32,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into it.
    let user = unsafe { &*buffer.as_ptr().cast::<TOKEN_USER>() };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID is valid; the call allocates the string, freed below with LocalFree.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is a NUL-terminated UTF-16 string from the call above.
    let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
    // SAFETY: `len` units before the NUL are initialised.
    let sid = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
    // SAFETY: `text` was allocated by ConvertSidToStringSidW.
    unsafe { LocalFree(text.cast()) };
    Ok(sid)
}
