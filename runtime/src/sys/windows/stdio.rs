//! Handing a child this process's standard output through its standard input, for a child
//! that must write something to another place first (libtest's header in a test binary).

use std::io::{self, Write};
use std::os::windows::io::{AsHandle, IntoRawHandle};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, SetStdHandle,
};

/// A copy of this process's standard output, to give a child as its standard input.
pub(crate) fn stdout_for_child() -> io::Result<std::process::Stdio> {
    let stdout = io::stdout();
    let copy = stdout.as_handle().try_clone_to_owned()?;
    Ok(std::process::Stdio::from(copy))
}

/// Makes this process's standard input its standard output (what [`stdout_for_child`] gave
/// it), and the null device its standard input. Rust's standard output asks for the handle
/// at every write, so the change holds for `println!` at once.
pub(crate) fn stdout_from_stdin() -> io::Result<()> {
    let _ = io::stdout().flush();
    // SAFETY: reads this process's standard input handle.
    let input = unsafe { GetStdHandle(STD_INPUT_HANDLE) };
    if input.is_null() || input == INVALID_HANDLE_VALUE {
        return Err(io::Error::other(
            "no standard input to take the output from",
        ));
    }
    // SAFETY: `input` is this process's open standard input handle.
    if unsafe { SetStdHandle(STD_OUTPUT_HANDLE, input) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let null = std::fs::OpenOptions::new().read(true).open("NUL")?;
    // The handle stays open for the life of the process, as a standard handle does.
    let null = null.into_raw_handle();
    // SAFETY: `null` is an open handle this process owns from now on.
    if unsafe { SetStdHandle(STD_INPUT_HANDLE, null) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
