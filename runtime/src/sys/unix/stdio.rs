//! Handing a child this process's standard output through its standard input, for a child
//! that must write something to another place first (libtest's header in a test binary).

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};

/// A copy of this process's standard output, to give a child as its standard input.
pub(crate) fn stdout_for_child() -> io::Result<std::process::Stdio> {
    let stdout = io::stdout();
    let copy = stdout.as_fd().try_clone_to_owned()?;
    Ok(std::process::Stdio::from(copy))
}

/// Makes this process's standard input its standard output (what [`stdout_for_child`] gave
/// it), and the null device its standard input.
pub(crate) fn stdout_from_stdin() -> io::Result<()> {
    // What was printed so far goes where it was meant to go.
    let _ = io::stdout().flush();
    // SAFETY: `dup2` on this process's own standard descriptors; it closes descriptor 1 and
    // makes it a copy of 0 in one step, so no other thread sees it missing.
    if unsafe { libc::dup2(0, 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: as above, onto descriptor 0; `null` stays open until after the call.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
