//! The one error type of skprocess.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Hook {
    /// `prerun`, at the start of each iteration.
    Prerun,
    /// `run`, the body of each iteration.
    Run,
    /// `postrun`, at the end of each iteration.
    Postrun,
    /// `onfinish`, once after the last iteration.
    Onfinish,
    /// `result`, which produces the output.
    Result,
    /// `error`, which handles the final error.
    Error,
}

impl Hook {
    /// The hook's name as written in an `impl` block.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerun => "prerun",
            Hook::Run => "run",
            Hook::Postrun => "postrun",
            Hook::Onfinish => "onfinish",
            Hook::Result => "result",
            Hook::Error => "error",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a hook failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureKind {
    /// The hook returned `Err`.
    Returned,
    /// The hook panicked.
    Panicked,
}

/// Everything that can go wrong starting, running or talking to a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hook returned an error or panicked in the child.
    #[error("`{hook}` hook {} on run {run}: {message}", match kind { FailureKind::Returned => "failed", FailureKind::Panicked => "panicked" })]
    Hook {
        /// The hook that failed.
        hook: Hook,
        /// The iteration index at the time of the failure.
        run: u64,
        /// Whether the hook returned an error or panicked.
        kind: FailureKind,
        /// The original error's `Display` text, or the panic message.
        message: String,
    },
    /// The child exited without delivering a result: a signal, `abort`, or `exit`.
    #[error("process crashed on run {run}: {status}")]
    Crashed {
        /// The exit status as the OS reported it.
        status: String,
        /// The last iteration index the parent heard of.
        run: u64,
    },
    /// The process was killed with [`Handle::kill`](crate::Handle::kill).
    #[error("process was killed before it delivered a result")]
    Killed,
    /// The child process could not be spawned.
    #[error("failed to spawn child process: {0}")]
    Spawn(#[source] std::io::Error),
    /// The child exited or timed out before it connected back to the parent.
    #[error(
        "child process did not connect back ({detail}); does `main` start with `skprocess::init()` or carry `#[skprocess::main]` (in tests, `skprocess::test_support!()`)?"
    )]
    Bootstrap {
        /// What happened to the child.
        detail: String,
    },
    /// The child does not know the process type (it was built from different code).
    #[error("child does not know process type `{0}`; was the executable rebuilt while running?")]
    UnknownType(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The wire carried something malformed.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// The connection to the other side is gone.
    #[error("the other process is disconnected")]
    Disconnected,
    /// A socket or file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A hook failure as it travels from the child to the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailureReport {
    pub hook: Hook,
    pub run: u64,
    pub kind: FailureKind,
    pub message: String,
}

impl From<FailureReport> for Error {
    fn from(report: FailureReport) -> Self {
        Error::Hook {
            hook: report.hook,
            run: report.run,
            kind: report.kind,
            message: report.message,
        }
    }
}
