//! Process control on Windows: end a process with an exit code that says "killed", learn
//! whether a child exited without giving up its handle, say how a process ended in words
//! (NTSTATUS crash codes by name), and end this one at once.
//!
//! Windows has no signals and no reaping: a process ends with a 32-bit exit code, and its
//! kernel object lives while any handle is open, so the `Child` the reaper holds keeps the pid
//! from being reused until the reaper lets it go. A crash is an NTSTATUS code as the exit
//! code (0xC0000005 for an access violation), and [`kill`] uses [`EXIT_KILLED`], a code in
//! the customer range no NTSTATUS or ordinary exit uses, so a kill reads as a kill.

use std::io;
use std::os::windows::io::AsRawHandle;
#[cfg(test)]
use std::os::windows::process::ExitStatusExt;
use std::process::{Child, ExitStatus};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, INFINITE, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, TerminateProcess, WaitForSingleObject,
};

/// The exit code of a process this runtime killed: `0xE0000009`, "killed" as SIGKILL (9) is
/// on Unix. Bit 29 marks it as an application's code, so no NTSTATUS of Windows is this.
pub(crate) const EXIT_KILLED: u32 = 0xE000_0009;

/// An open process handle, closed on drop.
pub(super) struct Process(HANDLE);

// SAFETY: a process handle is a kernel object reference usable from any thread.
unsafe impl Send for Process {}

impl Process {
    /// Opens process `pid` with `access`.
    pub(super) fn open(pid: u32, access: u32) -> io::Result<Self> {
        // SAFETY: a plain call; a null result is checked below.
        let handle = unsafe { OpenProcess(access, 0, pid) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(handle))
    }

    pub(super) fn raw(&self) -> HANDLE {
        self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `open` and is closed only here.
        unsafe { CloseHandle(self.0) };
    }
}

/// Ends the process behind `handle` with [`EXIT_KILLED`].
fn terminate_handle(handle: HANDLE) -> io::Result<()> {
    // SAFETY: `handle` is an open process handle with PROCESS_TERMINATE access.
    if unsafe { TerminateProcess(handle, EXIT_KILLED) } != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ends process `pid` at once (`TerminateProcess`) with [`EXIT_KILLED`].
#[allow(dead_code)] // The reaper holds `Child` values and uses `terminate`; kept for the seam.
pub(crate) fn kill(pid: u32) -> io::Result<()> {
    terminate_handle(Process::open(pid, PROCESS_TERMINATE)?.raw())
}

/// Ends `child` at once with [`EXIT_KILLED`], through the handle it holds (no pid lookup, so
/// it can never hit another process). Succeeds when it had exited already, as std's
/// `Child::kill` does.
pub(crate) fn terminate(child: &mut Child) -> io::Result<()> {
    let handle = child.as_raw_handle();
    match terminate_handle(handle) {
        // SAFETY: `handle` stays open while `child` lives; a zero wait only asks.
        Err(_) if (unsafe { WaitForSingleObject(handle, 0) }) == WAIT_OBJECT_0 => Ok(()),
        other => other,
    }
}

/// Blocks until process `pid` has exited. Its `Child` keeps its handle, so its status can
/// still be taken, as with `waitid(WNOWAIT)` on Unix. Never fails with `Interrupted`.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let process = Process::open(pid, PROCESS_SYNCHRONIZE)?;
    // SAFETY: an open handle with SYNCHRONIZE access.
    match unsafe { WaitForSingleObject(process.raw(), INFINITE) } {
        WAIT_OBJECT_0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether process `pid` has exited (`WaitForSingleObject(h, 0)`), without touching any
/// `Child` of it. A pid that names no process counts as exited.
#[allow(dead_code)] // The runtime asks the reaper instead; kept for the seam.
pub(crate) fn has_exited(pid: u32) -> bool {
    let access = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
    match Process::open(pid, access) {
        // SAFETY: an open handle with SYNCHRONIZE access.
        Ok(process) => (unsafe { WaitForSingleObject(process.raw(), 0) }) == WAIT_OBJECT_0,
        Err(_) => true,
    }
}

/// NTSTATUS codes a crashed process ends with, and what they mean.
const NTSTATUS: &[(u32, &str, &str)] = &[
    (0x8000_0003, "STATUS_BREAKPOINT", "breakpoint"),
    (0xC000_0005, "STATUS_ACCESS_VIOLATION", "access violation"),
    (
        0xC000_001D,
        "STATUS_ILLEGAL_INSTRUCTION",
        "illegal instruction",
    ),
    (
        0xC000_0025,
        "STATUS_NONCONTINUABLE_EXCEPTION",
        "non-continuable exception",
    ),
    (
        0xC000_008C,
        "STATUS_ARRAY_BOUNDS_EXCEEDED",
        "array bounds exceeded",
    ),
    (
        0xC000_008E,
        "STATUS_FLOAT_DIVIDE_BY_ZERO",
        "float divide by zero",
    ),
    (
        0xC000_0094,
        "STATUS_INTEGER_DIVIDE_BY_ZERO",
        "integer divide by zero",
    ),
    (0xC000_0095, "STATUS_INTEGER_OVERFLOW", "integer overflow"),
    (
        0xC000_0096,
        "STATUS_PRIVILEGED_INSTRUCTION",
        "privileged instruction",
    ),
    (0xC000_00FD, "STATUS_STACK_OVERFLOW", "stack overflow"),
    (0xC000_0135, "STATUS_DLL_NOT_FOUND", "a DLL was not found"),
    (
        0xC000_0139,
        "STATUS_ENTRYPOINT_NOT_FOUND",
        "an entry point was not found",
    ),
    (0xC000_013A, "STATUS_CONTROL_C_EXIT", "Ctrl+C"),
    (
        0xC000_0142,
        "STATUS_DLL_INIT_FAILED",
        "a DLL failed to initialise",
    ),
    (0xC000_0374, "STATUS_HEAP_CORRUPTION", "heap corruption"),
    (
        0xC000_0409,
        "STATUS_STACK_BUFFER_OVERRUN",
        "stack buffer overrun (fail fast, abort)",
    ),
];

/// The name and meaning of an NTSTATUS code, such as `STATUS_ACCESS_VIOLATION` for
/// 0xC0000005.
pub(crate) fn ntstatus_name(code: u32) -> Option<(&'static str, &'static str)> {
    NTSTATUS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, name, meaning)| (*name, *meaning))
}

/// Describes an exit status in words: `killed (TerminateProcess)`, `crashed with 0xC0000005
/// (STATUS_ACCESS_VIOLATION: access violation)`, `exited with code 3`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    let code = status.code().map_or(0, |c| c as u32);
    if code == EXIT_KILLED {
        return format!("killed (TerminateProcess, exit code {code:#010X})");
    }
    if let Some((name, meaning)) = ntstatus_name(code) {
        return format!("crashed with {code:#010X} ({name}: {meaning})");
    }
    // Error and warning severities of NTSTATUS (the top bits) are crashes, not exit codes.
    if code & 0xC000_0000 == 0xC000_0000 {
        return format!("crashed with NTSTATUS {code:#010X}");
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => status.to_string(),
    }
}

/// Runs `handler` when the process exits through the C runtime (`main` returning or `exit`),
/// not after `TerminateProcess` or [`exit_now`].
pub(crate) fn at_exit(handler: extern "C" fn()) {
    unsafe extern "C" {
        safe fn atexit(handler: extern "C" fn()) -> std::ffi::c_int;
    }
    atexit(handler);
}

/// Ends this process with `code` at once (`TerminateProcess` on itself), without exit
/// handlers, DLL detach notifications or flushing: for a process whose other threads may hold
/// the very locks those would take (the loader lock among them, which `ExitProcess` takes).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: the pseudo-handle of this process; TerminateProcess on it does not return.
    unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
    // Only reached if Windows refused, which it does not for the own process.
    std::process::abort()
}

/// The status of a process this runtime killed, for tests that need one without a process.
#[cfg(test)]
pub(crate) fn exit_status_killed() -> ExitStatus {
    ExitStatus::from_raw(EXIT_KILLED)
}

/// The status of a process that exited with `code`, for tests.
#[cfg(test)]
pub(crate) fn exit_status_from_code(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code as u32)
}

#[cfg(test)]
#[path = "process_tests.rs"]
pub(super) mod tests;
