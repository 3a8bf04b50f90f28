//! What can go wrong on a connection, apart from what the messages mean. The crate's
//! [`Error`](crate::Error) converts from it, so callers above keep using `?`.

use std::io;

use crate::transport::frame::WireError;

/// A failure of the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The other end is gone, or the connection broke.
    #[error("the other process is disconnected")]
    Disconnected,
    /// A frame could not be encoded or decoded, or was over the limit.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No connection proved the token before the deadline.
    #[error("no connection proved the token in time")]
    NotProven,
    /// A server already serves its limit of connections and refused this one.
    #[error("the server already serves its limit of {limit} connections; this one was refused")]
    TooManyConnections {
        /// The server's cap on live connections.
        limit: u32,
    },
    /// A socket operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
