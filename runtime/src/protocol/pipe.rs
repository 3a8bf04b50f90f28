//! The pipe protocol: the handshake a point and its anchor exchange when the point connects.
//!
//! The transport's hello must be alone on the wire until the service accepts it, so the anchor
//! speaks first:
//!
//! | anchor → point | meaning |
//! |---|---|
//! | `AnchorReply::Ready` | the transport's hello was accepted; the point may introduce itself |
//! | `AnchorReply::Accepted` | the point is now the anchor's one peer |
//! | `AnchorReply::Refused` | why not; the anchor closes the connection |
//!
//! | point → anchor | meaning |
//! |---|---|
//! | `PointHello` | which pipe and which message types the point was built for |
//!
//! After `Accepted`, each frame in either direction is one user message encoded with the
//! wire codec, without any envelope; the end of the connection is the end of the pipe.

use serde::{Deserialize, Serialize};

/// The first frame a point sends after the transport's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PointHello {
    /// The one-time number the anchor minted for its point.
    pub(crate) nonce: u64,
    /// A hash of the message types, as the anchor sees them (what it sends, what it receives).
    pub(crate) type_hash: u64,
}

/// The anchor's answer to a [`PointHello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AnchorReply {
    /// The anchor waits for the point's hello.
    Ready,
    /// The anchor's process id.
    Accepted {
        pid: u32,
    },
    Refused(Refusal),
}

/// Why an anchor refused a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// Another process holds the point's connection and is still alive.
    InUse { pid: u32 },
    /// The nonce does not belong to this anchor's pipe.
    WrongPipe,
    /// The point was built for other message types.
    TypeMismatch,
    /// The anchor was closed.
    Closed,
}
