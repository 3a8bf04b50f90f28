//! The one error type of skprocess.

use serde::{Deserialize, Serialize};

use crate::hook::Hook;
use crate::panics::{At, PanicLocation, PanicReport};

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
    #[error("`{hook}` hook {} on run {run}{}: {message}", match kind { FailureKind::Returned => "failed", FailureKind::Panicked => "panicked" }, At(location))]
    Hook {
        /// The hook that failed.
        hook: Hook,
        /// The iteration index at the time of the failure.
        run: u64,
        /// Whether the hook returned an error or panicked.
        kind: FailureKind,
        /// The original error's `Display` text, or the panic message.
        message: String,
        /// Where the hook panicked (`file:line:column`); `None` for an `Err`, or when code in
        /// the child replaced the panic hook.
        location: Option<PanicLocation>,
        /// The child's backtrace of the panic, when `RUST_BACKTRACE` in the child's
        /// environment asked for one (set and not `0`); its top frames, cut to a few KiB.
        backtrace: Option<String>,
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
    /// The child ended without delivering a result: a signal, `abort`, `exit`, or a connection
    /// that broke off, even in the middle of a message.
    #[error("process crashed on run {run}: {status}")]
    Crashed {
        /// What ended it, such as `killed by signal 9 (SIGKILL)` or `exited with code 3`.
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
    /// This binary's registry of process types is empty, so no child could find the type it
    /// is started for: the linker dropped the entries `#[skprocess]` placed. GNU ld does so on
    /// the `x86_64-pc-windows-gnu` toolchain (dtolnay/linkme#25) unless it is given
    /// `-C link-arg=-Wl,--no-gc-sections`; nothing was spawned.
    #[error(
        "no process type is registered in this binary, so `{0}` cannot start: the linker dropped the link-time registry; on the GNU toolchain for Windows (x86_64-pc-windows-gnu) build with RUSTFLAGS=\"-C link-arg=-Wl,--no-gc-sections\" (dtolnay/linkme#25)"
    )]
    EmptyRegistry(String),
    /// The child does not know the process type (it was built from different code).
    #[error("child does not know process type `{0}`; was the executable rebuilt while running?")]
    UnknownType(String),
    /// A value was too large for one frame ([`Config::max_frame_bytes`](crate::Config)); it was
    /// refused by the side that tried to send it, and nothing was sent.
    #[error(
        "a value of {size} bytes does not fit in a frame of at most {limit} bytes (`Config::max_frame_bytes`)"
    )]
    TooLarge {
        /// The encoded size of the value, in bytes.
        size: u64,
        /// The largest value a frame can carry, in bytes.
        limit: u64,
    },
    /// A value of a user's type cannot cross the process boundary with postcard, the wire's
    /// codec, which is not self-describing: encoding it failed, or (in debug builds, the first
    /// value of each type a thread sends) it did not read back as written. Said by the
    /// sender, before anything was sent. See README, "What postcard cannot carry".
    #[error(
        "`{type_name}` cannot cross the process boundary with postcard: {detail}; it likely uses {likely}"
    )]
    Encoding {
        /// The type, as `std::any::type_name` gives it.
        type_name: &'static str,
        /// The serde attribute (or kind of field) that is the likely cause.
        likely: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The receiver's message queue is full (see [`Config::inbox_capacity`](crate::Config)).
    #[error("the receiving queue is full")]
    Full,
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The wire carried something malformed.
    #[error(transparent)]
    Wire(crate::transport::frame::WireError),
    /// The connection to the other side is gone.
    #[error("the other process is disconnected")]
    Disconnected,
    /// A long-lived endpoint (a queue, a process queue, a pipe, the log collector) already
    /// serves as many connections as it may; the connection was refused. Close unused handles
    /// (each thread's queue handle holds a connection) or retry later.
    #[error("the server already serves its limit of {limit} connections; this one was refused")]
    TooManyConnections {
        /// The server's cap on live connections.
        limit: u32,
    },
    /// `tell` or `listen` was called by a process that runs as a pool item: it has no parent
    /// connection to talk over.
    #[error("a process that runs as a pool item has no parent to tell or listen to")]
    NoParentLink,
    /// One item of a [`Pool`](crate::Pool) map failed; `error` says how (a panic, a hook
    /// failure, a crash of its worker, a timeout, a value too large, …).
    #[error("item {index} failed: {error}")]
    Item {
        /// The item's position in the input.
        index: u64,
        /// What happened to it.
        error: Box<Error>,
    },
    /// A pool function (or a worker's function) panicked on an item.
    #[error("the function panicked{}: {message}", At(location))]
    Panicked {
        /// The panic's text.
        message: String,
        /// Where it panicked (`file:line:column`), when it ran in a child process whose panic
        /// hook was not replaced; `None` for a function run on a thread of this process.
        location: Option<PanicLocation>,
        /// The child's backtrace of the panic, when `RUST_BACKTRACE` in the child's
        /// environment asked for one (set and not `0`); its top frames, cut to a few KiB.
        backtrace: Option<String>,
    },
    /// A pool item ran longer than the map's [`timeout`](crate::Maps::timeout); its worker was
    /// killed (a worker thread is abandoned) and replaced.
    #[error("the item ran longer than its limit of {limit:?}; its worker was replaced")]
    ItemTimeout {
        /// The map's per-item limit.
        limit: std::time::Duration,
    },
    /// The pool was closed or terminated: it takes no more work.
    #[error("the pool is closed")]
    PoolClosed,
    /// A cluster (`cluster::Cluster`, feature `cluster`) could not do its part: its Redis
    /// server could not be reached or lost a map's state, or an item's hosts kept stopping
    /// until its attempts were spent; the text says which, naming the server or the host.
    #[error("cluster: {0}")]
    Cluster(String),
    /// No pool worker could be started.
    #[error("no pool worker could be started: {0}")]
    NoWorker(String),
    /// A pool worker refused to run: it is not the same build as the pool's process.
    #[error("a pool worker refused to run: {0}")]
    WorkerRefused(String),
    /// A socket or file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An operation on a shared value failed on its coordinator (a user method panicked, an
    /// integer overflowed, an index was out of range), or the share cannot do what was asked.
    #[error("shared value: {0}")]
    Shared(String),
    /// The shared value's coordinator is stopped; `start()` it first.
    #[error("the share is stopped; call `start()` first")]
    ShareStopped,
    /// The process's live resources could not be reopened in the child before its first hook
    /// (see [`Process::reopen_live`](crate::Process::reopen_live)); lives were spent on it.
    #[error("live resources could not be reopened before run {run}: {message}")]
    Reopen {
        /// The iteration the start would have run.
        run: u64,
        /// Which field, and why.
        message: String,
    },
    /// A pipe call failed.
    #[error(transparent)]
    Pipe(#[from] crate::pipe::PipeError),
    /// [`Worker::kill`](crate::Worker::kill) was called on a worker started with
    /// [`run_thread`](crate::run_thread): a thread cannot be killed.
    #[error(
        "a thread worker cannot be killed; let its function return (check a flag), or start it with `run` to run it in a process"
    )]
    ThreadNotKillable,
    /// The worker's result was already taken by [`Worker::join_timeout`](crate::Worker::join_timeout).
    #[error("the worker's result was already taken")]
    AlreadyJoined,
    /// [`WorkerResource::send`](crate::WorkerResource::send) found `limit` results sent and
    /// not yet received.
    #[error("{limit} results are unread; call `recv` before sending more")]
    TooManyUnread {
        /// The resource's unread limit.
        limit: usize,
    },
    /// [`WorkerResource::execute`](crate::WorkerResource::execute) was called while results of
    /// earlier sends were not received.
    #[error("{unread} results of earlier sends are unread; `recv` them before `execute`")]
    UnreadResults {
        /// How many results wait to be received.
        unread: usize,
    },
    /// [`WorkerResource::recv`](crate::WorkerResource::recv) was called with every result
    /// already received.
    #[error("no result is pending; `send` data first")]
    NothingPending,
    /// [`ProcessQueue::start`](crate::ProcessQueue::start) was given more items than the
    /// queue has room for ([`ProcessQueueConfig::capacity`](crate::ProcessQueueConfig));
    /// none of them was queued.
    #[error(
        "the process queue holds {len} of at most {capacity} items and cannot take {adding} more; none was queued"
    )]
    ProcessQueueFull {
        /// The queue's capacity.
        capacity: usize,
        /// Items not done when the call was made.
        len: usize,
        /// Items the call tried to add.
        adding: usize,
    },

    /// A [`Queue`](crate::Queue) cannot be reached any more: the process that created it
    /// dropped its last handle or ended.
    #[error("the queue is closed: the process that created it dropped it or ended")]
    QueueClosed,

    /// A message read from a [`Queue`](crate::Queue) could not be decoded as the queue's type
    /// (a handle of another type, or another build, put it); the message was skipped, the
    /// queue goes on.
    #[error("a queue message could not be decoded as `{type_name}`: {message}")]
    QueueMessage {
        /// The queue's message type.
        type_name: &'static str,
        /// What the decoder said.
        message: String,
    },
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
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// Live resources could not be reopened before the first hook of a start.
    Reopen {
        run: u64,
        message: String,
    },
}

impl Failure {
    /// Whether it happened in `hook`.
    pub(crate) fn is_in(&self, hook: Hook) -> bool {
        match self {
            Failure::Hook(report) => report.hook == hook,
            Failure::Timeout { hook: h, .. } => *h == hook,
            Failure::Crashed { .. } | Failure::TooLarge { .. } | Failure::Reopen { .. } => false,
        }
    }

    /// Whether retrying the same iteration may cure it.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Failure::Hook(report) => report.hook.is_iteration_hook(),
            Failure::Timeout { hook, .. } => hook.is_iteration_hook(),
            Failure::Crashed { .. } => true,
            Failure::TooLarge { .. } => false,
            Failure::Reopen { .. } => true,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Hook(report) => report.into(),
            Failure::Timeout { hook, limit, run } => Error::Timeout { hook, limit, run },
            Failure::Crashed { status, run } => Error::Crashed { status, run },
            Failure::TooLarge { size, limit } => Error::TooLarge { size, limit },
            Failure::Reopen { run, message } => Error::Reopen { run, message },
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
    /// Where a panic happened (a returned error has none).
    pub location: Option<PanicLocation>,
    /// The child's backtrace of a panic, when its environment asked for one.
    pub backtrace: Option<String>,
}

impl From<FailureReport> for Error {
    fn from(report: FailureReport) -> Self {
        Error::Hook {
            hook: report.hook,
            run: report.run,
            kind: report.kind,
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        }
    }
}

impl From<PanicReport> for Error {
    fn from(report: PanicReport) -> Self {
        Error::Panicked {
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        }
    }
}

/// Why [`Handle::try_tell`](crate::Handle::try_tell) or
/// [`tell_timeout`](crate::Handle::tell_timeout) did not send: the message comes back, so
/// nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TellError<T> {
    /// The receiver's queue stayed full; here is the message.
    #[error("the receiving queue is full")]
    Full(T),
    /// Sending failed for another reason (disconnected, too large); the message was dropped.
    #[error(transparent)]
    Failed(Error),
}

impl<T> TellError<T> {
    /// The message, when it was not sent because the queue was full.
    pub fn into_message(self) -> Option<T> {
        match self {
            TellError::Full(message) => Some(message),
            TellError::Failed(_) => None,
        }
    }
}

impl<T> From<TellError<T>> for Error {
    fn from(error: TellError<T>) -> Self {
        match error {
            TellError::Full(_) => Error::Full,
            TellError::Failed(error) => error,
        }
    }
}

impl From<crate::transport::frame::WireError> for Error {
    /// A frame over the limit is [`Error::TooLarge`]; everything else stays a wire error.
    fn from(error: crate::transport::frame::WireError) -> Self {
        match error {
            crate::transport::frame::WireError::TooLarge { len, max } => Error::TooLarge {
                size: len,
                limit: u64::from(max),
            },
            other => Error::Wire(other),
        }
    }
}

impl From<crate::transport::TransportError> for Error {
    /// Keeps the meaning callers match on: a broken connection is [`Error::Disconnected`], a
    /// frame over the limit [`Error::TooLarge`], and no child proving its token in time a
    /// [`Error::Bootstrap`].
    fn from(error: crate::transport::TransportError) -> Self {
        use crate::transport::TransportError;
        match error {
            TransportError::Disconnected => Error::Disconnected,
            TransportError::Wire(wire) => wire.into(),
            TransportError::NotProven => Error::Bootstrap {
                detail: "no connection proved the token in time".into(),
            },
            TransportError::TooManyConnections { limit } => Error::TooManyConnections { limit },
            TransportError::Io(io) => Error::Io(io),
        }
    }
}
