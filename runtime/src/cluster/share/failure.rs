//! How an operation on a share on a cluster failed, and the keys a share uses: shared by the
//! backend and the command and transaction code it drives.

use redis::RedisError;

use crate::error::Error;

/// Why an operation did not complete.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server could not be reached, or the link broke: the connection is made again.
    Link(RedisError),
    /// The operation itself failed (an overflow, bad arguments, too many conflicts); the
    /// message names it. Nothing was changed.
    Failed(String),
    /// Other writers kept changing what the operation read, past its patience; nothing was
    /// changed. Not the operation's own fault: a write lost this way is reported to the next
    /// call.
    Contended(String),
    /// A user method panicked; nothing was sent, so nothing was changed.
    Panicked {
        /// The method, as `Type::method`.
        method: String,
        /// The panic's message, location and backtrace.
        panic: crate::panics::PanicReport,
    },
    /// The share's keys are gone from the server.
    Gone,
    /// No connection could be made (the error names the server).
    Unreachable(Error),
    /// The handle's time limit (`Share::with_timeout`) passed first. A command cut short
    /// may still have been applied, and its connection is dropped (its reply may still come).
    Expired,
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_timeout()
            || error.is_connection_refusal()
        {
            Failure::Link(error)
        } else {
            Failure::Failed(error.to_string())
        }
    }
}

/// The keys of one share.
pub(super) struct ShareKeys {
    /// The share's own key: the share exists while it does.
    pub(super) share: String,
    /// One key per field, in the struct's order.
    pub(super) fields: Vec<String>,
    /// The last failure.
    pub(super) error: String,
}
