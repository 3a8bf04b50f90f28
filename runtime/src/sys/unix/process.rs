//! Process control: end a process, learn whether a child exited without reaping it, say how a
//! process ended in words, and end this one at once.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;

/// Starts `command` as a child. (On Windows it also joins a job that ends it with this
/// process; here a child learns of its parent's end from its connection.)
pub(crate) fn spawn(command: &mut Command) -> io::Result<Child> {
    command.spawn()
}

/// Ends `child` at once (`SIGKILL`); no error when it had exited already.
pub(crate) fn terminate(child: &mut Child) -> io::Result<()> {
    child.kill()
}

/// Nothing to do on Unix: a child learns of its parent's end from its connection (the end of
/// the stream), which every role reads. (Windows watches the parent's process handle too.)
pub(crate) fn watch_parent(code: i32) -> io::Result<()> {
    let _ = code;
    Ok(())
}

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

/// When this process started, as [`is_running`] compares it: on Linux the start time in clock
/// ticks since boot from `/proc/self/stat`; 0 (unknown) where that cannot be read cheaply.
pub(crate) fn own_start_time() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| start_time(std::process::id()).unwrap_or(0))
}

/// Whether the process that had `pid` and started at `start` (0: unknown) still runs, for
/// telling a dead owner's leftovers from a live one's. Any process may be asked, not only a
/// child, and nothing is reaped.
///
/// `kill(pid, 0)` failing with `ESRCH` is death. On Linux `/proc/<pid>/stat` then tells a
/// zombie (gone) and a start time other than `start` (the pid was reused: the owner is gone).
/// Elsewhere a zombie, or a reused pid, counts as running. When in doubt (a process of another
/// user, a stat that cannot be read), the answer is "running": the caller only ever removes
/// what belongs to the dead.
pub(crate) fn is_running(pid: u32, start: u64) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if raw <= 0 {
        return true;
    }
    // SAFETY: signal 0 delivers nothing; it only checks that `raw` names a process.
    if unsafe { libc::kill(raw, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    match stat(pid) {
        Some((state, started)) => {
            !matches!(state, 'Z' | 'X') && (start == 0 || started == 0 || started == start)
        }
        None => true,
    }
}

fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, started)| started)
}

/// The state letter and the start time of `pid` from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// No cheap source elsewhere: the pid alone decides.
#[cfg(not(target_os = "linux"))]
fn stat(_pid: u32) -> Option<(char, u64)> {
    None
}

/// Reads fields 3 (state) and 22 (start time) of a `/proc/<pid>/stat` line. The command name
/// (field 2, in parentheses) may hold spaces and parentheses itself, so fields are counted
/// after its last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
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

    /// A child that has exited and is not reaped yet (a zombie).
    fn exited_unreaped() -> std::process::Child {
        let child = std::process::Command::new("true").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !has_exited(child.id()) {
            assert!(Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(Duration::from_millis(1));
        }
        child
    }

    #[test]
    fn has_exited_does_not_reap() {
        let mut child = exited_unreaped();
        assert!(
            child.try_wait().unwrap().is_some(),
            "the child was reaped already"
        );
    }

    #[test]
    fn a_process_is_running_until_it_is_reaped_and_a_reused_pid_is_not_its_owner() {
        let me = std::process::id();
        assert!(is_running(me, own_start_time()));
        assert!(
            is_running(me, 0),
            "an unknown start time must not count as death"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_running(pid, 0), "a reaped process counts as running");
        if cfg!(target_os = "linux") {
            assert_ne!(own_start_time(), 0);
            assert!(
                !is_running(me, own_start_time() + 1),
                "a reused pid counts as its owner"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_zombie_is_not_running() {
        let mut child = exited_unreaped();
        assert!(!is_running(child.id(), 0), "a zombie counts as running");
        child.wait().unwrap();
    }

    #[test]
    fn a_stat_line_gives_its_state_and_start_time_whatever_the_command_name() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1 2";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
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
