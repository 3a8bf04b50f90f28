//! How a child ended, in words: the signal by name or the exit code.

use std::process::ExitStatus;

/// What the parent learned about a child that went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The child was reaped with this status.
    Status(ExitStatus),
    /// The child broke the protocol and was killed.
    Protocol(String),
    /// The child could not be reaped (already reaped elsewhere).
    Unknown,
}

impl Exit {
    /// `killed by signal 9 (SIGKILL)`, `exited with code 3`, …
    pub(crate) fn describe(&self) -> String {
        match self {
            Exit::Status(status) => describe_status(*status),
            Exit::Protocol(detail) => format!("sent a malformed message and was killed: {detail}"),
            Exit::Unknown => "ended; its exit status is unknown".to_owned(),
        }
    }
}

/// Describes an exit status, naming the signal.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
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

/// The name of every standard signal.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    let names: &[(i32, &str)] = &[
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
    names
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn every_standard_signal_has_its_name() {
        use std::os::unix::process::ExitStatusExt;
        for signal in 1..=31 {
            assert!(signal_name(signal).is_some(), "signal {signal} has no name");
        }
        assert_eq!(
            describe_status(ExitStatus::from_raw(libc::SIGKILL)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(3 << 8)),
            "exited with code 3"
        );
    }
}
