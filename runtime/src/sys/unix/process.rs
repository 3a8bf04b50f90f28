//! Process control: end a process, learn whether a child exited without reaping it, say how a
//! process ended in words, and end this one at once.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Sends `SIGKILL` to process `pid`. For the reaper that holds pids rather than `Child`
/// values (the one spawn path of issue 15 brings it).
#[allow(dead_code)]
pub(crate) fn kill(pid: u32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `kill` has no memory preconditions; a positive pid names one process.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks until process `pid`, a child of this process, has exited, without reaping it
/// (`waitid` with `WNOWAIT`), so the one reaper (`parent/reaper.rs`) learns of the exit by a
/// kernel wake-up instead of polling while the `Child` stays unreaped (its pid cannot be
/// reused) until the reaper takes its status. Fails with `Interrupted` on a signal (call
/// again) and with the OS error when `pid` is no child of ours.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let pid = libc::id_t::from(pid);
    // SAFETY: an all-zero siginfo_t is a valid value; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT;
    // SAFETY: `info` is a valid, exclusively borrowed siginfo_t.
    if unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid`, a child of this process, has exited, without reaping it (`waitid`
/// with `WNOWAIT`), so its `Child` can still be waited for. A pid that is no child of ours
/// counts as exited. (The runtime asks the reaper instead; kept for the seam.)
#[allow(dead_code)]
pub(crate) fn has_exited(pid: u32) -> bool {
    let pid = libc::id_t::from(pid);
    // SAFETY: an all-zero siginfo_t is a valid value; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a valid, exclusively borrowed siginfo_t.
    let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) };
    // SAFETY: after a successful waitid the pid field is initialised (zero when still running).
    rc != 0 || unsafe { info.si_pid() } != 0
}

/// The pid of this process's parent.
pub(crate) fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// Describes an exit status in words: `killed by signal 9 (SIGKILL)`, `exited with code 3`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        return match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        };
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => status.to_string(),
    }
}

/// The name of a standard signal, such as `SIGKILL` for 9.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| *name)
}

/// Every standard signal and its name.
const SIGNALS: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGSYS, "SIGSYS"),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    (libc::SIGPWR, "SIGPWR"),
];

/// Runs `handler` when the process exits normally (`exit`, or `main` returning), not after a
/// signal or `_exit`.
pub(crate) fn at_exit(handler: extern "C" fn()) {
    // SAFETY: registers a plain function without arguments; `atexit` only stores it.
    unsafe { libc::atexit(handler) };
}

/// Ends this process with `code` at once, without exit handlers or flushing stdio: for a
/// process whose other threads may hold the very locks those would take.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process at once.
    unsafe { libc::_exit(code) }
}

/// The status of a process killed by SIGKILL, for tests that need one without a process.
#[cfg(test)]
pub(crate) fn exit_status_killed() -> ExitStatus {
    ExitStatus::from_raw(libc::SIGKILL)
}

/// The status of a process that exited with `code`, for tests.
#[cfg(test)]
pub(crate) fn exit_status_from_code(code: i32) -> ExitStatus {
    ExitStatus::from_raw(code << 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[cfg(target_os = "linux")]
    #[test]
    fn every_standard_signal_has_its_name() {
        for signal in 1..=31 {
            assert!(signal_name(signal).is_some(), "signal {signal} has no name");
        }
        assert_eq!(
            describe_status(exit_status_killed()),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_status(exit_status_from_code(3)),
            "exited with code 3"
        );
    }

    #[test]
    fn has_exited_does_not_reap() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !has_exited(child.id()) {
            assert!(Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            child.try_wait().unwrap().is_some(),
            "the child was reaped already"
        );
    }

    #[test]
    fn the_wait_ends_at_the_exit_and_leaves_the_child_unreaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        loop {
            match wait_exited(child.id()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.unwrap(),
            }
        }
        assert!(
            child.try_wait().unwrap().is_some(),
            "the child was reaped already"
        );
    }

    #[test]
    fn kill_ends_a_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        kill(child.id()).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(describe_status(status), "killed by signal 9 (SIGKILL)");
    }
}
