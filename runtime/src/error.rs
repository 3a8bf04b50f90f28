//! The one error type of skprocess, and the small enums that say which peer is gone, where a
//! panic happened, what timed out and which call came at the wrong time.

use serde::{Deserialize, Serialize};

use crate::hook::Hook;
use crate::panics::{At, PanicReport};

pub use crate::panics::PanicLocation;

/// How a hook failed, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FailureKind {
    /// The hook returned `Err`.
    Returned,
    /// The hook panicked.
    Panicked,
}

/// Which peer or service is gone, in [`Error::Gone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// The child process of a [`Handle`](crate::Handle): its lifecycle is over (every
    /// message it sent has been read), or its connection broke.
    Process,
    /// The parent of this child: its connection broke (the parent is ending).
    Parent,
    /// A [`Pool`](crate::Pool) that was stopped or killed: it takes no more work, and items
    /// it had not finished when it was killed fail with this.
    Pool,
    /// A [`Queue`](crate::Queue) whose creating process dropped its last handle or ended.
    Queue,
    /// A [`Share`](crate::Share) whose coordinator is gone: the creating process dropped its
    /// last handle or ended, or the coordinator was lost.
    Share,
    /// The other end of a pipe: it was closed or dropped, or its process ended.
    PipeEnd,
    /// A worker process ([`WorkerResource`](crate::WorkerResource)) whose connection ended.
    Worker,
    /// The other end of some other connection (a process-queue worker, the log collector),
    /// or a connection that broke in the middle of a frame.
    Connection,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peer::Process => "the process",
            Peer::Parent => "the parent process",
            Peer::Pool => "the pool (it was stopped or killed)",
            Peer::Queue => "the queue (the process that created it dropped it or ended)",
            Peer::Share => "the share's coordinator",
            Peer::PipeEnd => "the other end of the pipe",
            Peer::Worker => "the worker",
            Peer::Connection => "the other end of the connection",
        })
    }
}

/// Where user code panicked, in [`Error::Panicked`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanicSite {
    /// A lifecycle hook of a process (standalone or run as a pool item).
    Hook {
        /// The hook that panicked.
        hook: Hook,
        /// The iteration index at the time.
        run: u64,
    },
    /// A function run by a [`Pool`](crate::Pool) map, [`run`](crate::run) or a
    /// [`WorkerResource`](crate::WorkerResource).
    Function,
    /// A method of a `#[shared] impl`, on the [`Share`](crate::Share)'s coordinator: what it
    /// changed in the value was undone, and the share goes on serving.
    SharedMethod {
        /// The method, as `Type::method`.
        method: String,
    },
}

impl std::fmt::Display for PanicSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PanicSite::Hook { hook, run } => write!(f, "`{hook}` hook panicked on run {run}"),
            PanicSite::Function => f.write_str("the function panicked"),
            PanicSite::SharedMethod { method } => {
                write!(
                    f,
                    "shared method `{method}` panicked (its changes were undone)"
                )
            }
        }
    }
}

/// What ran out of time, in [`Error::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timed {
    /// A hook overran its [`timeout`](crate::Config::timeout) and was abandoned; the child
    /// was ended (a life is spent, so it may be retried).
    Hook {
        /// The hook that overran.
        hook: Hook,
        /// The iteration index at the time.
        run: u64,
    },
    /// A pool item ran longer than its map's [`timeout`](crate::pool::Maps::timeout); its
    /// worker was killed (a worker thread is abandoned) and replaced.
    Item,
    /// [`Handle::result_timeout`](crate::Handle::result_timeout) ran out of time; the child
    /// was killed.
    Result,
    /// A call on a [`Share`](crate::Share) handle made by
    /// [`with_timeout`](crate::Share::with_timeout), or
    /// [`get_timeout`](crate::Share::get_timeout), had no answer in time (the coordinator is
    /// paused, stopped or busy), or a write of that handle found no room in its ring in time.
    /// The operation may or may not have been applied; the share stays usable.
    Share,
}

/// The text of [`Error::Timeout`]: what ran out, after how long, and what was done about it.
fn timeout_text(limit: std::time::Duration, of: &Timed) -> String {
    match of {
        Timed::Hook { hook, run } => {
            format!("`{hook}` hook timed out after {limit:?} on run {run}")
        }
        Timed::Item => {
            format!("the item ran longer than its limit of {limit:?}; its worker was replaced")
        }
        Timed::Result => format!("no result within {limit:?}; the process was killed"),
        Timed::Share => format!("the share's coordinator did not answer within {limit:?}"),
    }
}

/// A call made in a state where it cannot work, in [`Error::Usage`]. Nothing was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Usage {
    /// `tell` or `listen` was called by a process that runs as a pool item: it has no parent
    /// connection to talk over.
    #[error("a process that runs as a pool item has no parent to tell or listen to")]
    NoParentLink,
    /// [`Worker::kill`](crate::Worker::kill) was called on a worker started with
    /// [`run_thread`](crate::run_thread): a thread cannot be killed.
    #[error(
        "a thread worker cannot be killed; let its function return (check a flag), or start it with `run` to run it in a process"
    )]
    ThreadNotKillable,
    /// The worker's result was already taken by
    /// [`Worker::join_timeout`](crate::Worker::join_timeout).
    #[error("the worker's result was already taken")]
    AlreadyJoined,
    /// [`WorkerResource::execute`](crate::WorkerResource::execute) was called while results
    /// of earlier sends were not received.
    #[error("{unread} results of earlier sends are unread; `recv` them before `execute`")]
    UnreadResults {
        /// How many results wait to be received.
        unread: usize,
    },
    /// [`WorkerResource::recv`](crate::WorkerResource::recv) was called with every result
    /// already received.
    #[error("no result is pending; `send` data first")]
    NothingPending,
    /// [`Share::pause`](crate::Share::pause) or [`resume`](crate::Share::resume) was called
    /// in a process other than the one that created the share.
    #[error("only the process that created a share can pause or resume it")]
    NotShareOwner,
}

/// What can go wrong setting up a pipe, in [`Error::Pipe`]. A pipe's other failures are the
/// crate's: a closed end is [`Error::Gone`] ([`Peer::PipeEnd`]), a message over the limit
/// [`Error::TooLarge`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// No point connected to the anchor within `PipeConfig::accept_timeout`.
    #[error("no process connected the pipe's point within {waited:?}")]
    NotConnected {
        /// How long the anchor waited.
        waited: std::time::Duration,
    },
    /// The point is already connected from another live process: a point moves into one
    /// process and is never shared.
    #[error(
        "this pipe point is already in use by process {pid}: a point moves into one process and cannot be shared"
    )]
    PointInUse {
        /// The process that holds the point's connection.
        pid: u32,
    },
    /// The point does not belong to the pipe it reached.
    #[error("this point does not belong to the pipe it connected to")]
    WrongPipe,
    /// The point was rebuilt with other message types than its anchor's.
    #[error("the point's message types differ from its anchor's")]
    TypeMismatch,
}

/// Everything that can go wrong starting, running or talking to a process, a pool, a share, a
/// queue or a pipe.
///
/// The variants are grouped by what happened: user code failed ([`Hook`](Error::Hook),
/// [`Panicked`](Error::Panicked), [`Timeout`](Error::Timeout)); a process ended without a
/// result ([`Crashed`](Error::Crashed), [`Killed`](Error::Killed)); the other side is gone
/// ([`Gone`](Error::Gone)); a value or a queue has no room ([`TooLarge`](Error::TooLarge),
/// [`Full`](Error::Full), …); a call came at the wrong time ([`Usage`](Error::Usage));
/// starting failed ([`Spawn`](Error::Spawn), [`Bootstrap`](Error::Bootstrap), …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hook returned `Err` in the child, and no life was left to retry it (or it was
    /// `onfinish` or `result`, which are not retried).
    #[error("`{hook}` hook failed on run {run}: {message}")]
    Hook {
        /// The hook that failed.
        hook: Hook,
        /// The iteration index at the time of the failure.
        run: u64,
        /// The error's `Display` text.
        message: String,
    },
    /// User code panicked: a hook (with no life left to retry it), a pool function, a
    /// [`run`](crate::run) function, a [`WorkerResource`](crate::WorkerResource)'s function
    /// or a `#[shared]` method called with a caller waiting.
    #[error("{site}{}: {message}", At(location))]
    Panicked {
        /// What panicked: which hook on which run, or a function.
        site: PanicSite,
        /// The panic's text.
        message: String,
        /// Where it panicked (`file:line:column`), when it ran in a child process or on a
        /// share's coordinator and the panic hook was not replaced since; `None` for a
        /// function run on a thread of this process.
        location: Option<PanicLocation>,
        /// The child's backtrace of the panic, when `RUST_BACKTRACE` in the child's
        /// environment asked for one (set and not `0`); its top frames, cut to a few KiB.
        backtrace: Option<String>,
    },
    /// A time limit ran out: a hook's, a pool item's, a `result_timeout`'s or a share
    /// handle's.
    #[error("{}", timeout_text(*limit, of))]
    Timeout {
        /// The limit that ran out.
        limit: std::time::Duration,
        /// What it limited.
        of: Timed,
    },
    /// The child ended without delivering a result: a signal, `abort`, `exit`, or a connection
    /// that broke off, even in the middle of a message. Also a pool item whose worker died
    /// while running it (`run` is then 0).
    #[error("process crashed on run {run}: {status}")]
    Crashed {
        /// What ended it, such as `killed by signal 9 (SIGKILL)` or `exited with code 3`.
        status: String,
        /// The last iteration index the parent heard of.
        run: u64,
    },
    /// The process was killed with a `kill` ([`Handle::kill`](crate::Handle::kill),
    /// [`Worker::kill`](crate::Worker::kill)) before it delivered a result.
    #[error("process was killed before it delivered a result")]
    Killed,
    /// The peer or service is gone: what was gone says which (a process whose lifecycle is
    /// over, a stopped pool, a queue or share whose creator ended, a pipe's other end, …).
    #[error("{peer} is gone")]
    Gone {
        /// What is gone.
        peer: Peer,
    },
    /// A value was too large for its frame ([`Config::max_frame_bytes`](crate::Config), a
    /// queue's or a pipe's message limit); it was refused by the side that tried to send it,
    /// and nothing was sent.
    #[error("a value of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The encoded size of the value, in bytes.
        size: u64,
        /// The largest value that fits, in bytes.
        limit: u64,
    },
    /// The receiver's message queue is full (see [`Config::inbox_capacity`](crate::Config)).
    #[error("the receiving queue is full")]
    Full,
    /// A long-lived endpoint (a queue, a process queue, a pipe, a share, the log collector)
    /// already serves as many connections as it may; the connection was refused. Close unused
    /// handles (each thread's queue handle holds a connection) or retry later.
    #[error("the server already serves its limit of {limit} connections; this one was refused")]
    TooManyConnections {
        /// The server's cap on live connections.
        limit: u32,
    },
    /// [`WorkerResource::send`](crate::WorkerResource::send) found `limit` results sent and
    /// not yet received.
    #[error("{limit} results are unread; call `recv` before sending more")]
    TooManyUnread {
        /// The resource's unread limit.
        limit: usize,
    },
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
    /// A call was made in a state where it cannot work; nothing was done.
    #[error(transparent)]
    Usage(Usage),
    /// A [`Share`](crate::Share)'s coordinator is paused; [`resume`](crate::Share::resume)
    /// it first (only calls in the creating process fail; other processes wait).
    #[error("the share is paused; call `resume()` first")]
    SharePaused,
    /// An operation on a shared value failed on its coordinator: an integer overflowed, an
    /// index was out of range, an operation the field's type does not have (a user method
    /// that panicked is [`Error::Panicked`]). Nothing was changed.
    #[error("shared value: {message}")]
    Shared {
        /// What the coordinator said.
        message: String,
    },
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
        "no process type is registered in this binary, so `{key}` cannot start: the linker dropped the link-time registry; on the GNU toolchain for Windows (x86_64-pc-windows-gnu) build with RUSTFLAGS=\"-C link-arg=-Wl,--no-gc-sections\" (dtolnay/linkme#25)"
    )]
    EmptyRegistry {
        /// The registry key of the process type that was to start.
        key: String,
    },
    /// The child does not know the process type (it was built from different code).
    #[error("child does not know process type `{key}`; was the executable rebuilt while running?")]
    UnknownType {
        /// The process type's registry key.
        key: String,
    },
    /// No pool worker could be started.
    #[error("no pool worker could be started: {reason}")]
    NoWorker {
        /// Why the last attempt failed.
        reason: String,
    },
    /// A pool worker refused to run: it is not the same build as the pool's process.
    #[error("a pool worker refused to run: {reason}")]
    WorkerRefused {
        /// The worker's reason.
        reason: String,
    },
    /// A cluster (`cluster::Cluster`, feature `cluster`) could not do its part: its Redis
    /// server could not be reached or lost a map's state, or an item's hosts kept stopping
    /// until its attempts were spent; `problem` says which, naming the server or the host.
    #[error("cluster: {problem}")]
    Cluster {
        /// What went wrong, naming the server or the host.
        problem: String,
    },
    /// A configuration value is invalid; nothing was started.
    #[error("invalid configuration: {problem}")]
    Config {
        /// Which setting, and what is wrong with it.
        problem: String,
    },
    /// The process's live resources could not be reopened in the child before its first hook
    /// (see [`Process::reopen_live`](crate::Process::reopen_live)); lives were spent on it.
    #[error("live resources could not be reopened before run {run}: {message}")]
    Reopen {
        /// The iteration the start would have run.
        run: u64,
        /// Which field, and why.
        message: String,
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
    /// Bytes did not decode as the message they should be (a peer of another build, or a type
    /// that postcard cannot carry), or a value could not be encoded.
    #[error("malformed message: {message}")]
    Malformed {
        /// What the codec said.
        message: String,
    },
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
    /// One item of a [`Pool`](crate::Pool) map failed; `error` says how (a panic, a hook
    /// failure, a crash of its worker, a timeout, a value too large, …).
    #[error("item {index} failed: {error}")]
    Item {
        /// The item's position in the input.
        index: u64,
        /// What happened to it.
        error: Box<Error>,
    },
    /// Setting up a pipe failed (see [`PipeError`]).
    #[error(transparent)]
    Pipe(PipeError),
    /// A socket or file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Names the peer of a broken connection: a [`Peer::Connection`] that is gone becomes
    /// `peer`, which the caller knows; every other error stays as it is.
    pub(crate) fn with_peer(self, peer: Peer) -> Self {
        match self {
            Error::Gone {
                peer: Peer::Connection,
            } => Error::Gone { peer },
            other => other,
        }
    }
}

impl<T> TrySendError<T> {
    /// [`Error::with_peer`] for the failure inside.
    pub(crate) fn with_peer(self, peer: Peer) -> Self {
        match self {
            TrySendError::Failed(error) => TrySendError::Failed(error.with_peer(peer)),
            full => full,
        }
    }
}

impl From<Usage> for Error {
    fn from(usage: Usage) -> Self {
        Error::Usage(usage)
    }
}

impl From<PipeError> for Error {
    fn from(error: PipeError) -> Self {
        Error::Pipe(error)
    }
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
            Failure::Timeout { hook, limit, run } => Error::Timeout {
                limit,
                of: Timed::Hook { hook, run },
            },
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
        match report.kind {
            FailureKind::Returned => Error::Hook {
                hook: report.hook,
                run: report.run,
                message: report.message,
            },
            FailureKind::Panicked => Error::Panicked {
                site: PanicSite::Hook {
                    hook: report.hook,
                    run: report.run,
                },
                message: report.message,
                location: report.location,
                backtrace: report.backtrace,
            },
        }
    }
}

impl Error {
    /// The panic of a `#[shared]` method on its share's coordinator.
    pub(crate) fn shared_method(method: String, panic: PanicReport) -> Self {
        Error::Panicked {
            site: PanicSite::SharedMethod { method },
            message: panic.message,
            location: panic.location,
            backtrace: panic.backtrace,
        }
    }
}

impl From<PanicReport> for Error {
    /// A panic in a function (a pool item's, a worker's).
    fn from(report: PanicReport) -> Self {
        Error::Panicked {
            site: PanicSite::Function,
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        }
    }
}

/// Why a send that may not wait did not send — [`Handle::try_tell`](crate::Handle::try_tell),
/// [`tell_timeout`](crate::Handle::tell_timeout), [`Queue::try_put`](crate::Queue::try_put),
/// a pipe's `try_send` and `send_timeout`: when there was no room the message comes back, so
/// nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The receiver's queue stayed full; here is the message.
    #[error("the receiving queue is full")]
    Full(T),
    /// Sending failed for another reason (the peer is gone, the message is too large); the
    /// message was dropped.
    #[error(transparent)]
    Failed(Error),
}

impl<T> TrySendError<T> {
    /// The message, when it was not sent because the queue was full.
    pub fn into_message(self) -> Option<T> {
        match self {
            TrySendError::Full(message) => Some(message),
            TrySendError::Failed(_) => None,
        }
    }
}

impl<T> From<Error> for TrySendError<T> {
    fn from(error: Error) -> Self {
        TrySendError::Failed(error)
    }
}

impl<T> From<TrySendError<T>> for Error {
    fn from(error: TrySendError<T>) -> Self {
        match error {
            TrySendError::Full(_) => Error::Full,
            TrySendError::Failed(error) => error,
        }
    }
}

impl From<crate::transport::frame::WireError> for Error {
    /// A frame over the limit is [`Error::TooLarge`], bytes that do not decode
    /// [`Error::Malformed`], a frame cut off by the peer [`Error::Gone`].
    fn from(error: crate::transport::frame::WireError) -> Self {
        use crate::transport::frame::WireError;
        match error {
            WireError::TooLarge { len, max } => Error::TooLarge {
                size: len,
                limit: u64::from(max),
            },
            WireError::Truncated { .. } => Error::Gone {
                peer: Peer::Connection,
            },
            WireError::Malformed(message) => Error::Malformed { message },
            WireError::Io(io) => Error::Io(io),
        }
    }
}

impl From<crate::transport::TransportError> for Error {
    /// Keeps the meaning callers match on: a broken connection is [`Error::Gone`] (a
    /// [`Peer::Connection`]; callers that know the peer say which), a
    /// frame over the limit [`Error::TooLarge`], and no child proving its token in time a
    /// [`Error::Bootstrap`].
    fn from(error: crate::transport::TransportError) -> Self {
        use crate::transport::TransportError;
        match error {
            TransportError::Disconnected => Error::Gone {
                peer: Peer::Connection,
            },
            TransportError::Wire(wire) => wire.into(),
            TransportError::NotProven => Error::Bootstrap {
                detail: "no connection proved the token in time".into(),
            },
            TransportError::TooManyConnections { limit } => Error::TooManyConnections { limit },
            TransportError::Io(io) => Error::Io(io),
        }
    }
}
