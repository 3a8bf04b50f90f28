//! Pipes: a typed, two-way (or one-way) channel between two processes, made of an [`Anchor`]
//! that stays in the process that created it and a [`Point`] that moves — inside a process's
//! state, or in a message — into the process that uses it.
//!
//! How the parts fit:
//! - [`Pipe::pair`] starts a small service in this process (a private socket and an accept
//!   thread; transport's `Server`) and returns the anchor, which owns it, and the point, which
//!   carries only what connecting needs: the service's endpoint, a one-time nonce and a hash of
//!   the message types.
//! - The point connects on its first use, directly to the anchor's process (never through a
//!   process's control connection), and proves the nonce and the types (`protocol::pipe`). A
//!   process restarted after a crash rebuilds the point from its state and connects again.
//! - `slot` holds the rules for a connecting point: one peer at a time, so a point used by a
//!   second live process is refused at its connection instead of interleaving messages.
//! - `link` is a connected end: each frame is one message, written and read on the caller's
//!   thread; the receiver's socket buffer bounds each direction, so a full peer makes `send`
//!   wait (backpressure) and `try_send`/`send_timeout` give the message back.
//!
//! The anchor cannot be serialized (a compile error: see [`CanLeaveItsProcess`]).

mod anchor;
mod link;
mod point;
mod slot;

use std::path::PathBuf;
use std::time::Duration;

pub use anchor::{Anchor, CanLeaveItsProcess};
pub use point::Point;

use crate::error::Error;
pub use crate::error::PipeError;
use crate::message::Message;

/// The two ends of a pipe: the anchor, which sends `S` and receives `R`, and its point, which
/// sends `R` and receives `S`.
pub type Ends<S, R> = (Anchor<S, R>, Point<R, S>);

/// Creates pipes. See [`Pipe::pair`] and [`Pipe::one_way`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Pipe;

impl Pipe {
    /// A two-way pipe: the anchor sends `A` and receives `B`; the point sends `B` and receives
    /// `A`. Keep the anchor; move the point into the process that talks to it.
    ///
    /// Fails only when the pipe's private socket cannot be created.
    pub fn pair<A: Message, B: Message>() -> Result<Ends<A, B>, Error> {
        Self::pair_with(PipeConfig::default())
    }

    /// [`pair`](Pipe::pair) with a configuration.
    pub fn pair_with<A: Message, B: Message>(config: PipeConfig) -> Result<Ends<A, B>, Error> {
        anchor::create(config)
    }

    /// A one-way pipe: the anchor only sends `T`, the point only receives it. Calling `recv` on
    /// the anchor or `send` on the point does not compile.
    pub fn one_way<T: Message>() -> Result<Ends<T, OneWay>, Error> {
        Self::one_way_with(PipeConfig::default())
    }

    /// [`one_way`](Pipe::one_way) with a configuration.
    pub fn one_way_with<T: Message>(config: PipeConfig) -> Result<Ends<T, OneWay>, Error> {
        anchor::create(config)
    }
}

/// The direction a one-way pipe's end does not have: it has no values and is not a
/// [`Message`], so neither `send` nor `recv` exists for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneWay {}

/// How a pipe behaves. Start from [`PipeConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipeConfig {
    /// How long a call on the anchor waits for the point to connect for the first time before
    /// it fails with [`PipeError::NotConnected`] (in [`Error::Pipe`]).
    ///
    /// Default: 10 s.
    pub accept_timeout: Duration,
    /// Largest encoded message, in bytes; a bigger one is [`Error::TooLarge`] at the
    /// sender, and nothing is sent.
    ///
    /// Default: 64 MiB.
    pub max_message_bytes: u32,
    /// Directory in which the pipe's private socket directory is created.
    ///
    /// Default: `None`, meaning [`std::env::temp_dir`].
    pub socket_dir: Option<PathBuf>,
}

impl Default for PipeConfig {
    fn default() -> Self {
        Self {
            accept_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024 * 1024,
            socket_dir: None,
        }
    }
}

/// The error of a closed end: the other end is gone.
pub(crate) fn closed() -> Error {
    Error::Gone {
        peer: crate::error::Peer::PipeEnd,
    }
}

/// The error of a message that does not encode or decode.
pub(crate) fn malformed(message: impl ToString) -> Error {
    Error::Malformed {
        message: message.to_string(),
    }
}

/// How long each side of the handshake waits for the other's frame.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A hash of the message types seen from the anchor (what it sends, what it receives). The
/// point and the anchor run the same executable, so the names agree when the types do.
fn type_hash<Sends, Receives>() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let names = [
        std::any::type_name::<Sends>(),
        "\0",
        std::any::type_name::<Receives>(),
    ];
    for byte in names.iter().flat_map(|name| name.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_hash_depends_on_direction_and_types() {
        assert_eq!(type_hash::<u32, String>(), type_hash::<u32, String>());
        assert_ne!(type_hash::<u32, String>(), type_hash::<String, u32>());
        assert_ne!(type_hash::<u32, OneWay>(), type_hash::<u64, OneWay>());
    }
}
