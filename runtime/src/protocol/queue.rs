//! What a queue handle in another process says to the queue's broker.
//!
//! Each thread of a process has its own connection to the broker, and sends one request at a
//! time: [`Request::Put`], [`Request::PutMany`] and [`Request::Fetch`] are answered by exactly one [`Reply`];
//! [`Request::Ack`], [`Request::Release`] and [`Request::End`] are not answered. A fetch
//! acknowledges what the thread has read so far, so a message stays leased to its reader
//! until the reader asks for more (or the connection ends, and it is requeued).

use serde::{Deserialize, Serialize};

/// A handle's request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<'a> {
    /// Append one encoded message; wait for room up to `wait_ms` (`None`: as long as it takes).
    Put {
        #[serde(borrow, with = "serde_bytes")]
        message: &'a [u8],
        wait_ms: Option<u64>,
    },
    /// Append several encoded messages (`payload`, each a little-endian `u32` length and the
    /// message), in order, waiting for room up to `wait_ms` (`None`: as long as it takes);
    /// answered with [`Reply::PutMany`].
    PutMany {
        #[serde(borrow, with = "serde_bytes")]
        payload: &'a [u8],
        wait_ms: Option<u64>,
    },
    /// Acknowledge every delivery up to `ack_through`, then lease up to `max` entries, waiting
    /// for one up to `wait_ms` (`None`: until one arrives).
    Fetch {
        ack_through: Option<u64>,
        max: u32,
        wait_ms: Option<u64>,
    },
    /// Acknowledge every delivery up to `through`.
    Ack { through: u64 },
    /// Give back the deliveries from `from` on (prefetched, not read).
    Release { from: u64 },
    /// Append an end.
    End,
}

/// The broker's answer to a `Put`, a `PutMany` or a `Fetch`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply<'a> {
    /// Whether the message was appended (`false`: the queue stayed full until the wait ended).
    Put { accepted: bool },
    /// How many messages of a `PutMany`, from its first, were appended (fewer than it held:
    /// the queue stayed full until the wait ended; the rest were not).
    PutMany { accepted: u32 },
    /// Deliveries `first..first + count`: `payload` holds the messages, each a little-endian
    /// `u32` length and the encoded message; when `end` is set the last delivery is an end
    /// (not in the payload). `count == 0`: nothing arrived before the wait ended.
    Batch {
        first: u64,
        count: u32,
        end: bool,
        #[serde(borrow, with = "serde_bytes")]
        payload: &'a [u8],
    },
    /// The queue's creating process dropped it.
    Closed,
}

/// Appends one message to a batch payload.
pub(crate) fn append_message(payload: &mut Vec<u8>, message: &[u8]) {
    // Messages are below the frame limit (a u32), checked when they were put.
    payload.extend_from_slice(&(message.len() as u32).to_le_bytes());
    payload.extend_from_slice(message);
}

/// Cuts the first message off a batch payload; `None` when the payload is cut short.
pub(crate) fn split_message(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = payload.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_splits_into_its_messages_and_refuses_a_short_one() {
        let mut payload = Vec::new();
        append_message(&mut payload, b"one");
        append_message(&mut payload, b"");
        append_message(&mut payload, b"three");
        let (first, rest) = split_message(&payload).unwrap();
        let (second, rest) = split_message(rest).unwrap();
        let (third, rest) = split_message(rest).unwrap();
        assert_eq!(
            (first, second, third),
            (&b"one"[..], &b""[..], &b"three"[..])
        );
        assert!(rest.is_empty());
        assert!(split_message(&payload[..5]).is_none());
        assert!(split_message(&[1, 0]).is_none());
    }
}
