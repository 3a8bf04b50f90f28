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
            Exit::Protocol(detail) => format!("broke the protocol and was killed: {detail}"),
            Exit::Unknown => "ended; its exit status is unknown".to_owned(),
        }
    }
}

/// How a process ended in words: the platform layer answers.
pub(crate) use crate::sys::describe_status;
