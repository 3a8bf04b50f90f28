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
    /// Every hook, in lifecycle order.
    pub const ALL: [Hook; 6] = [
        Hook::Prerun,
        Hook::Run,
        Hook::Postrun,
        Hook::Onfinish,
        Hook::Result,
        Hook::Error,
    ];

    /// Whether the hook is part of an iteration, so its failure can be retried.
    pub fn is_iteration_hook(self) -> bool {
        matches!(self, Hook::Prerun | Hook::Run | Hook::Postrun)
    }

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

/// One value per hook, with a field for each (for example [`Timeouts`](crate::Timeouts) and
/// the hook timers of [`ProcessTimers`](crate::ProcessTimers)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerHook<T> {
    /// The value for `prerun`.
    pub prerun: T,
    /// The value for `run`.
    pub run: T,
    /// The value for `postrun`.
    pub postrun: T,
    /// The value for `onfinish`.
    pub onfinish: T,
    /// The value for `result`.
    pub result: T,
    /// The value for `error`.
    pub error: T,
}

impl<T> PerHook<T> {
    /// Builds each value from its hook.
    pub fn from_fn(mut value: impl FnMut(Hook) -> T) -> Self {
        Self {
            prerun: value(Hook::Prerun),
            run: value(Hook::Run),
            postrun: value(Hook::Postrun),
            onfinish: value(Hook::Onfinish),
            result: value(Hook::Result),
            error: value(Hook::Error),
        }
    }

    /// The value for `hook`.
    pub fn get(&self, hook: Hook) -> &T {
        match hook {
            Hook::Prerun => &self.prerun,
            Hook::Run => &self.run,
            Hook::Postrun => &self.postrun,
            Hook::Onfinish => &self.onfinish,
            Hook::Result => &self.result,
            Hook::Error => &self.error,
        }
    }

    /// The value for `hook`, to change it.
    pub fn get_mut(&mut self, hook: Hook) -> &mut T {
        match hook {
            Hook::Prerun => &mut self.prerun,
            Hook::Run => &mut self.run,
            Hook::Postrun => &mut self.postrun,
            Hook::Onfinish => &mut self.onfinish,
            Hook::Result => &mut self.result,
            Hook::Error => &mut self.error,
        }
    }

    /// Every hook with its value, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (Hook, &T)> {
        Hook::ALL
            .into_iter()
            .map(move |hook| (hook, self.get(hook)))
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
    /// A hook overran its time limit and was abandoned.
    #[error("`{hook}` hook timed out after {limit:?} on run {run}")]
    Timeout {
        /// The hook that overran.
        hook: Hook,
        /// Its configured limit.
        limit: std::time::Duration,
        /// The iteration index at the time.
        run: u64,
    },
    /// The child exited without delivering a result: a signal, `abort`, or `exit`.
    #[error("process crashed on run {run}: {status}")]
    Crashed {
        /// The exit status as the OS reported it.
        status: String,
        /// The last iteration index the parent heard of.
        run: u64,
    },
    /// [`Handle::result_timeout`](crate::Handle::result_timeout) ran out of time; the child
    /// was killed.
    #[error("no result within {0:?}; the process was killed")]
    ResultTimeout(std::time::Duration),
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

/// A process failure in the form that crosses the process boundary, both ways: the child
/// reports hook failures and timeouts, the parent hands crashes to a child running `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    Hook(FailureReport),
    Timeout {
        hook: Hook,
        limit: std::time::Duration,
        run: u64,
    },
    Crashed {
        status: String,
        run: u64,
    },
}

impl Failure {
    /// Whether it happened in `hook`.
    pub(crate) fn is_in(&self, hook: Hook) -> bool {
        match self {
            Failure::Hook(report) => report.hook == hook,
            Failure::Timeout { hook: h, .. } => *h == hook,
            Failure::Crashed { .. } => false,
        }
    }

    /// Whether retrying the same iteration may cure it.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Failure::Hook(report) => report.hook.is_iteration_hook(),
            Failure::Timeout { hook, .. } => hook.is_iteration_hook(),
            Failure::Crashed { .. } => true,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Hook(report) => report.into(),
            Failure::Timeout { hook, limit, run } => Error::Timeout { hook, limit, run },
            Failure::Crashed { status, run } => Error::Crashed { status, run },
        }
    }
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
