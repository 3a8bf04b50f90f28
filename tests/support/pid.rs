//! Process liveness for tests, the one place a test asks whether a pid is alive, stopped or
//! gone, or signals one: included with `#[path = "support/pid.rs"] mod pid;`. Linux reads
//! `/proc`; the tests that use it run on Linux (other Unixes only type-check them, and Windows
//! builds it without `signal`).
#![allow(dead_code)]

/// The scheduler state of `pid` (`R`, `S`, `T`, `Z`, …), `None` once it is reaped.
pub fn state(pid: u32) -> Option<char> {
    stat_state(&format!("/proc/{pid}/stat"))
}

/// The scheduler state of thread `tid` of this process, `None` once it has exited.
pub fn thread_state(tid: u32) -> Option<char> {
    stat_state(&format!("/proc/self/task/{tid}/stat"))
}

/// The id of the calling thread (for [`thread_state`]).
pub fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .expect("/proc/thread-self names the calling thread")
}

/// Whether `pid` is a live process (zombies awaiting a reaper count as gone).
pub fn running(pid: u32) -> bool {
    state(pid).is_some_and(|state| state != 'Z' && state != 'X')
}

/// Whether `pid` is stopped (SIGSTOP) or traced.
pub fn stopped(pid: u32) -> bool {
    matches!(state(pid), Some('T' | 't'))
}

/// Whether `pid` exists at all, running or a zombie not yet reaped.
pub fn exists(pid: u32) -> bool {
    state(pid).is_some()
}

/// Whether `pid` is gone entirely: exited and reaped.
pub fn reaped(pid: u32) -> bool {
    !exists(pid)
}

/// The parent of `pid`, `None` once it is reaped.
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

fn stat_state(path: &str) -> Option<char> {
    let stat = std::fs::read_to_string(path).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}
