//! Process liveness for tests, the one place a test asks whether a pid is alive, stopped or
//! gone, or signals one: included with `#[path = "support/pid.rs"] mod pid;`. Linux reads
//! `/proc`; the tests that use it run on Linux (other Unixes only type-check them). On Windows
//! (under Wine in CI) liveness comes from the process object: [`running`], [`exists`],
//! [`reaped`] and [`kill`]; scheduler states and signals are Unix only.
#![allow(dead_code)]

/// The scheduler state of `pid` (`R`, `S`, `T`, `Z`, …), `None` once it is reaped.
#[cfg(unix)]
pub fn state(pid: u32) -> Option<char> {
    stat_state(&format!("/proc/{pid}/stat"))
}

/// The scheduler state of thread `tid` of this process, `None` once it has exited.
#[cfg(unix)]
pub fn thread_state(tid: u32) -> Option<char> {
    stat_state(&format!("/proc/self/task/{tid}/stat"))
}

/// The id of the calling thread (for [`thread_state`]).
#[cfg(unix)]
pub fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .expect("/proc/thread-self names the calling thread")
}

/// Whether `pid` is a live process (zombies awaiting a reaper count as gone).
#[cfg(unix)]
pub fn running(pid: u32) -> bool {
    state(pid).is_some_and(|state| state != 'Z' && state != 'X')
}

/// Whether `pid` is stopped (SIGSTOP) or traced.
#[cfg(unix)]
pub fn stopped(pid: u32) -> bool {
    matches!(state(pid), Some('T' | 't'))
}

/// Whether `pid` exists at all, running or a zombie not yet reaped.
#[cfg(unix)]
pub fn exists(pid: u32) -> bool {
    state(pid).is_some()
}

/// Whether `pid` is gone entirely: exited and reaped.
pub fn reaped(pid: u32) -> bool {
    !exists(pid)
}

/// The parent of `pid`, `None` once it is reaped.
#[cfg(unix)]
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Sends `signal` to `pid`, asserting it was delivered.
#[cfg(unix)]
#[track_caller]
pub fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) on a pid the test owns (its child or a worker it started).
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// What the runtime's description of a killed process contains on this platform.
pub const KILLED: &str = if cfg!(windows) {
    "killed (TerminateProcess"
} else {
    "SIGKILL"
};

/// Ends `pid` at once, asserting it was done: SIGKILL on Unix, `TerminateProcess` with the
/// runtime's "killed" exit code (0xE0000009) on Windows.
#[track_caller]
pub fn kill(pid: u32) {
    #[cfg(unix)]
    signal(pid, libc::SIGKILL);
    #[cfg(windows)]
    windows::kill(pid);
}

/// Ends `pid` at once if it is still there, as [`kill`], but says nothing when it is gone.
pub fn try_kill(pid: u32) {
    #[cfg(unix)]
    {
        // SAFETY: kill(2) has no memory-safety preconditions; a failure is ignored.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    #[cfg(windows)]
    windows::try_kill(pid);
}

#[cfg(unix)]
fn stat_state(path: &str) -> Option<char> {
    let stat = std::fs::read_to_string(path).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether `pid` is a live process (one that exited counts as gone, even while a handle keeps
/// its process object).
#[cfg(windows)]
pub fn running(pid: u32) -> bool {
    windows::running(pid)
}

/// Whether `pid` still exists in the sense the Unix tests mean (not yet reaped). Windows has
/// no zombies: a process that exited is gone for the tests, even while some handle (the
/// parent's job among them, under Wine) keeps its process object.
#[cfg(windows)]
pub fn exists(pid: u32) -> bool {
    windows::running(pid)
}

#[cfg(windows)]
mod windows {
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, WAIT_TIMEOUT};
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, TerminateProcess, WaitForSingleObject,
    };

    /// An open process handle, closed on drop.
    struct Process(HANDLE);

    impl Drop for Process {
        fn drop(&mut self) {
            // SAFETY: a handle opened by `open`, closed only here.
            unsafe { CloseHandle(self.0) };
        }
    }

    fn open(pid: u32, access: u32) -> Option<Process> {
        // SAFETY: a plain call; a null handle is refused.
        let handle = unsafe { OpenProcess(access, 0, pid) };
        (!handle.is_null()).then_some(Process(handle))
    }

    pub fn running(pid: u32) -> bool {
        // SAFETY: an open handle with SYNCHRONIZE access; a zero wait only asks.
        open(pid, PROCESS_SYNCHRONIZE)
            .is_some_and(|p| unsafe { WaitForSingleObject(p.0, 0) } == WAIT_TIMEOUT)
    }

    pub fn try_kill(pid: u32) {
        if let Some(process) = open(pid, PROCESS_TERMINATE) {
            // SAFETY: an open handle with PROCESS_TERMINATE access; a failure is ignored.
            unsafe { TerminateProcess(process.0, 0xE000_0009) };
        }
    }

    #[track_caller]
    pub fn kill(pid: u32) {
        let process = open(pid, PROCESS_TERMINATE).expect("the process can be opened");
        // SAFETY: an open handle with PROCESS_TERMINATE access.
        let done = unsafe { TerminateProcess(process.0, 0xE000_0009) };
        assert_ne!(done, 0, "TerminateProcess({pid}) failed");
    }
}
