//! The transport: authenticated, framed local-socket connections, independent of what the
//! messages mean.
//!
//! - [`frame`]: length-prefixed frames with a size limit, and the codec seam.
//! - [`region`]: words shared with one peer through a shared-memory region, and the read
//!   that takes a region handed over with a connection's bytes.
//! - [`rendezvous`]: the private socket a child connects back to, and the token it proves.
//! - [`connection`]: one end of a connection; whole frames from a reused buffer.
//! - [`clients`]: the one cache of client connections to long-lived endpoints, by token
//!   (per process in a `static`, per thread in a `thread_local!`).
//! - [`error`]: what can go wrong on a connection; the crate's `Error` converts from it.
//! - [`endpoint`]: where a long-lived server listens (what a handle carries to reach it), and
//!   the accept thread that passes each proven connection to the server's admission.
//! - [`role`]: the reader role of a connection: a thread waiting for a message reads it
//!   itself, a background reader drains the rest.
//! - [`server`]: the one server behind every long-lived endpoint (share coordinators, queues,
//!   process queues, pipes, the log collector): a cap on connections, a reader thread per
//!   connection feeding the feature's session, writes with a deadline.
//!
//! It stands on `sys` alone: sockets, waits and the peer's pid come from there, and nothing
//! from the layers above is imported.
//!
//! The protocols that run over it (what a lifecycle child and its parent say to each other)
//! live in `protocol`.

pub(crate) mod clients;
pub(crate) mod connection;
pub(crate) mod endpoint;
pub mod error;
pub mod frame;
pub(crate) mod region;
pub(crate) mod rendezvous;
pub(crate) mod role;
pub(crate) mod server;

pub(crate) use connection::Connection;
pub use error::TransportError;
