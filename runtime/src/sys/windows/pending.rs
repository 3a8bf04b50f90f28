//! Stand-ins for the parts of the Windows platform layer that another branch (`winci`) owns —
//! process control, the clock, the running image and shared memory — so the named-pipe
//! transport can be built and run under Wine before they land. Each does the plain thing
//! (no Job Object, no PE debug GUID, no shared memory: `Unsupported`, and callers take their
//! socket path). This file goes when `process.rs`, `clock.rs`, `image.rs` and `shm.rs` arrive.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
#[cfg(test)]
use std::os::windows::process::ExitStatusExt;
use std::process::ExitStatus;

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, INFINITE, OpenProcess, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
    TerminateProcess, WaitForSingleObject,
};

/// Now, on the shared monotonic clock (`QueryPerformanceCounter`), in nanoseconds.
pub(crate) fn monotonic_nanos() -> u64 {
    let (mut count, mut frequency) = (0i64, 0i64);
    // SAFETY: both calls only write the integer they are given.
    unsafe {
        QueryPerformanceCounter(&mut count);
        QueryPerformanceFrequency(&mut frequency);
    }
    let (Ok(count), Ok(frequency)) = (u128::try_from(count), u128::try_from(frequency)) else {
        return 0;
    };
    if frequency == 0 {
        return 0;
    }
    u64::try_from(count.saturating_mul(1_000_000_000) / frequency).unwrap_or(u64::MAX)
}

/// Opens process `pid` with `access`.
fn open(pid: u32, access: u32) -> io::Result<OwnedHandle> {
    // SAFETY: no preconditions; a null result is an error.
    let raw: HANDLE = unsafe { OpenProcess(access, 0, pid) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle owned by nothing else.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// Ends process `pid` (`TerminateProcess`, exit code 1 as `Child::kill` gives).
#[allow(dead_code)]
pub(crate) fn kill(pid: u32) -> io::Result<()> {
    let process = open(pid, PROCESS_TERMINATE)?;
    // SAFETY: the handle is open with terminate access.
    if unsafe { TerminateProcess(process.as_raw_handle(), 1) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks until process `pid` has exited; its `Child` keeps the handle that holds the pid.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let process = open(pid, PROCESS_SYNCHRONIZE)?;
    // SAFETY: the handle is open with synchronize access.
    if unsafe { WaitForSingleObject(process.as_raw_handle(), INFINITE) } == WAIT_OBJECT_0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid` has exited (one that cannot be opened counts as exited).
#[allow(dead_code)]
pub(crate) fn has_exited(pid: u32) -> bool {
    match open(pid, PROCESS_SYNCHRONIZE) {
        Ok(process) => {
            // SAFETY: the handle is open with synchronize access; a zero wait only tests it.
            let state = unsafe { WaitForSingleObject(process.as_raw_handle(), 0) };
            state == WAIT_OBJECT_0
        }
        Err(_) => true,
    }
}

/// The pid of this process's parent, from a process snapshot (0 when not found).
pub(crate) fn parent_pid() -> u32 {
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };
    // SAFETY: a snapshot of all processes; an invalid handle is checked below.
    let raw = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if raw.is_null() || raw == windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE {
        return 0;
    }
    // SAFETY: a fresh handle owned by nothing else.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(raw) };
    // SAFETY: an all-zero entry with its size set is the documented starting value.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = size_of::<PROCESSENTRY32W>() as u32;
    let me = std::process::id();
    // SAFETY: `entry` is valid and sized; the snapshot is open.
    let mut more = unsafe { Process32FirstW(snapshot.as_raw_handle(), &mut entry) } != 0;
    while more {
        if entry.th32ProcessID == me {
            return entry.th32ParentProcessID;
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(snapshot.as_raw_handle(), &mut entry) } != 0;
    }
    0
}

/// NTSTATUS codes a crashed process exits with, in words.
const NTSTATUS_NAMES: &[(u32, &str)] = &[
    (0xC000_0005, "access violation"),
    (0xC000_001D, "illegal instruction"),
    (0xC000_0094, "integer division by zero"),
    (0xC000_00FD, "stack overflow"),
    (0xC000_0409, "stack buffer overrun (abort)"),
    (0xC000_013A, "terminated by Ctrl+C"),
    (0x4000_0015, "fatal application exit"),
    (0x8000_0003, "breakpoint"),
];

/// Describes an exit status in words: `exited with code 3`, or an NTSTATUS such as
/// `crashed with 0xC0000005 (access violation)`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    let Some(code) = status.code() else {
        return status.to_string();
    };
    let raw = code as u32;
    if raw >= 0x8000_0000 || raw == 0x4000_0015 {
        return match NTSTATUS_NAMES.iter().find(|(c, _)| *c == raw) {
            Some((_, name)) => format!("crashed with {raw:#010X} ({name})"),
            None => format!("crashed with {raw:#010X}"),
        };
    }
    format!("exited with code {code}")
}

unsafe extern "C" {
    fn atexit(handler: extern "C" fn()) -> i32;
}

/// Runs `handler` when the process exits normally.
pub(crate) fn at_exit(handler: extern "C" fn()) {
    // SAFETY: registers a plain function without arguments; the CRT only stores it.
    unsafe { atexit(handler) };
}

/// Ends this process with `code` at once, without exit handlers or DLL notifications.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: ends this process; the pseudo-handle is always valid.
    unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
    std::process::abort()
}

/// The status of a process ended by `Child::kill`, for tests.
#[cfg(test)]
pub(crate) fn exit_status_killed() -> ExitStatus {
    ExitStatus::from_raw(1)
}

/// The status of a process that exited with `code`, for tests.
#[cfg(test)]
pub(crate) fn exit_status_from_code(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code as u32)
}

/// The running executable and its identity.
pub(crate) mod image {
    use std::sync::OnceLock;

    use windows_sys::Win32::System::Memory::{
        MEMORY_BASIC_INFORMATION, PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE,
        PAGE_EXECUTE_WRITECOPY, VirtualQuery,
    };

    /// Whether `address` lies in executable memory of the module that holds `anchor`.
    pub(crate) fn is_code_beside(anchor: usize, address: usize) -> bool {
        let (Some(anchor), Some(target)) = (query(anchor), query(address)) else {
            return false;
        };
        let executable =
            PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
        anchor.AllocationBase == target.AllocationBase && target.Protect & executable != 0
    }

    fn query(address: usize) -> Option<MEMORY_BASIC_INFORMATION> {
        // SAFETY: an all-zero structure is valid; VirtualQuery only writes into it.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: any address may be queried.
        let n = unsafe {
            VirtualQuery(
                address as *const _,
                &mut info,
                size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        (n != 0).then_some(info)
    }

    /// The running executable.
    pub(crate) fn own_executable() -> std::io::Result<std::path::PathBuf> {
        std::env::current_exe()
    }

    /// Identifies this build: a hash (FNV-1a) of the executable file, computed once.
    pub(crate) fn build_identity() -> &'static [u8] {
        static IDENTITY: OnceLock<Vec<u8>> = OnceLock::new();
        IDENTITY.get_or_init(|| {
            let bytes = own_executable().and_then(std::fs::read).unwrap_or_default();
            let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            let mut identity = b"file-hash:".to_vec();
            identity.extend_from_slice(&hash.to_le_bytes());
            identity.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            identity
        })
    }
}

/// Shared memory: none yet on Windows, so share writes take the socket path.
pub(crate) mod shm {
    use std::io::{self, Read};

    use super::super::socket::Stream;

    /// A region handle to give another process (never made here).
    #[derive(Debug)]
    pub(crate) struct RegionFd(());

    /// A shared mapping (never made here).
    #[derive(Debug)]
    pub(crate) struct Region(());

    impl Region {
        /// The first byte of the mapping.
        pub(crate) fn as_ptr(&self) -> *mut u8 {
            std::ptr::null_mut()
        }

        /// No shared memory here: `Unsupported`.
        pub(crate) fn create(_name: &str, _len: usize) -> io::Result<(Self, RegionFd)> {
            Err(io::ErrorKind::Unsupported.into())
        }

        /// No shared memory here: `Unsupported`.
        pub(crate) fn map_peer(_fd: RegionFd, _len: usize) -> io::Result<Self> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// No region can be sent: `Unsupported`.
    pub(crate) fn send_with_fd(_stream: &Stream, _bytes: &[u8], _fd: &RegionFd) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// One plain read (no region ever comes with it).
    pub(crate) fn receive(
        stream: &Stream,
        buf: &mut [u8],
    ) -> io::Result<(usize, Option<RegionFd>)> {
        let mut stream = stream;
        stream.read(buf).map(|n| (n, None))
    }
}
