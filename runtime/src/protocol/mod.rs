//! The protocols that run over the transport, one message set per role, and the flow control
//! they share.
//!
//! Every child starts the same way: it connects, proves its token (transport), then reads one
//! [`Start`] that names its [`Role`] and the registered type it runs — once the start proved in
//! turn that it comes from the parent ([`parent_proof`]). What follows depends on the role:
//!
//! - [`lifecycle`]: a `#[skprocess]` process and the parent's supervisor.
//! - [`pipe`]: the handshake of a pipe's point with its anchor (not a child role: any process
//!   holding a point connects to the anchor's process directly).
//! - [`pool`]: a pool worker and the pool's dispatcher.
//! - [`process_queue`]: a [`ProcessQueue`](crate::ProcessQueue)'s worker asking its owner
//!   for items (not a child role: the worker is started with [`run`](crate::run)).
//!
//! Payload messages (user `tell`s) are bounded by [`credits`]: a side sends only as many as the
//! receiver has room for, while control messages flow freely, so a full queue never holds up
//! a stop, a kill or a terminal report.

pub(crate) mod bootstrap;
pub(crate) mod credits;
pub(crate) mod lifecycle;
pub(crate) mod pipe;
pub(crate) mod pool;
pub(crate) mod process_queue;
pub(crate) mod queue;
pub(crate) mod share;

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Which engine a child runs; registry entries and the start message both carry it, and a
/// child refuses a start whose role does not match the entry it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// The `#[skprocess]` lifecycle engine: hooks, runs, lives, timeouts.
    Lifecycle,
    /// A [`Pool`](crate::Pool) worker: runs chunks of items until the pool closes.
    PoolWorker,
    /// A [`WorkerResource`](crate::WorkerResource)'s process: runs one function on each item
    /// it receives, answering at once, until its parent closes the connection.
    ResidentWorker,
}

/// The first message a child receives once it has proven its token.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start<'a> {
    /// The parent's proof ([`parent_proof`] of the child's token): a child compares it with
    /// the one in its bootstrap variable before it uses anything else in the start.
    pub(crate) proof: String,
    pub(crate) role: Role,
    pub(crate) key: &'a str,
    #[serde(with = "serde_bytes")]
    pub(crate) state: &'a [u8],
    pub(crate) config: Config,
    pub(crate) resume: lifecycle::Resume,
    /// How many [`lifecycle::ToChild::Samples`] frames follow with the timers so far.
    pub(crate) sample_frames: u32,
}

/// The proof a parent sends back in [`Start`] for the child it started with `token`.
///
/// The child proves `token` in its hello, so whoever accepts its connection learns it; the
/// proof is a keyed hash of the token (SipHash under two random 128-bit keys of this parent
/// process, which never leave it) that only the parent can compute. The parent puts it in the
/// child's bootstrap variable beside the token, and sends it again in `Start`: a server that
/// only saw the hello cannot, so a child never runs code offsets, a state or a configuration
/// from anyone but its parent.
pub(crate) fn parent_proof(token: &str) -> String {
    static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
    // `RandomState` draws its keys from the operating system's random source.
    let keys = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]);
    let mut proof = String::with_capacity(32);
    for key in keys {
        let mut hasher = key.build_hasher();
        hasher.write(b"skprocess parent proof\0");
        hasher.write(token.as_bytes());
        proof.push_str(&format!("{:016x}", hasher.finish()));
    }
    proof
}

/// Room a start message needs beside the state itself: key, configuration, and a resume point
/// that may carry a failure whose message is at most [`MAX_FAILURE_MESSAGE`] bytes.
pub(crate) const START_OVERHEAD: usize = 16 * 1024;

pub(crate) use crate::failure_text::MAX_FAILURE_MESSAGE;

/// Cuts a failure message to [`MAX_FAILURE_MESSAGE`] bytes (on a character boundary), so that
/// the report carrying it always fits in a frame.
pub(crate) fn fit_message(message: String) -> String {
    crate::failure_text::cut(message, MAX_FAILURE_MESSAGE)
}

/// The variant index that `Tell` has in both directions' message enums, so a payload can be
/// framed without copying it into an encoded message.
const TELL_VARIANT: u8 = 0;

/// The encoded start of a `Tell(payload)` message: its variant and the payload's length, as
/// the codec writes them. Returns the buffer and how many of its bytes are used.
pub(crate) fn tell_prefix(payload_len: usize) -> ([u8; 11], usize) {
    let mut prefix = [0u8; 11];
    prefix[0] = TELL_VARIANT;
    let mut used = 1;
    let mut rest = payload_len as u64;
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            prefix[used] = byte;
            return (prefix, used + 1);
        }
        prefix[used] = byte | 0x80;
        used += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::lifecycle::{ToChild, ToParent};
    use super::*;
    use crate::transport::frame;
    use crate::transport::rendezvous::tokens_match;

    #[test]
    fn the_tell_prefix_matches_the_codec_in_both_directions() {
        for len in [0usize, 1, 127, 128, 300, 16_384, 1 << 21] {
            let payload = vec![5u8; len];
            let (prefix, used) = tell_prefix(len);
            let mut manual = prefix[..used].to_vec();
            manual.extend_from_slice(&payload);
            assert_eq!(frame::encode(&ToParent::Tell(&payload)).unwrap(), manual);
            assert_eq!(frame::encode(&ToChild::Tell(&payload)).unwrap(), manual);
        }
    }

    #[test]
    fn only_the_parent_can_prove_a_token_back() {
        let proof = parent_proof("a1b2");
        assert_eq!(proof.len(), 32);
        assert_eq!(
            proof,
            parent_proof("a1b2"),
            "the parent computes it again for Start"
        );
        assert_ne!(proof, parent_proof("a1b3"), "each child has its own");
        assert!(
            !proof.contains("a1b2"),
            "the proof does not give the token away"
        );
        assert!(tokens_match(&proof, &parent_proof("a1b2")));
        assert!(!tokens_match(&proof, "a1b2"));
        assert!(!tokens_match(&proof, ""));
        assert!(!tokens_match(&proof, &proof[..31]));
    }
}
