//! What a [`ProcessQueue`](crate::ProcessQueue)'s worker process and the queue's owner say to
//! each other.
//!
//! The worker asks for one item at a time ([`ToQueue::Next`]), saying which item it finished
//! since its last request; the owner answers each request with exactly one [`ToWorker`]: an
//! item, or [`ToWorker::Retire`] when the queue is empty (the worker then exits). An item is
//! removed from the owner's queue only when a `Next` reports it finished, so a worker that
//! dies while it holds an item leaves that item queued.

use serde::{Deserialize, Serialize};

/// Room an item frame needs beside the encoded item: the variant, the item's id and the
/// length prefix of its bytes.
pub(crate) const ITEM_OVERHEAD: usize = 32;

/// Worker → owner.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToQueue {
    /// The worker is ready for its next item.
    Next {
        /// Which worker asks: the owner hands items only to the worker it started last.
        generation: u64,
        /// The item the worker finished since its previous request.
        finished: Option<Finished>,
    },
}

/// An item the worker is done with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Finished {
    /// The item's id, as [`ToWorker::Item`] gave it.
    pub(crate) id: u64,
    /// The handler's panic message, when it panicked (the item is done either way: a poison
    /// item is not retried forever).
    pub(crate) panic: Option<String>,
}

/// Owner → worker, one per [`ToQueue::Next`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// Handle this item, then ask again.
    Item {
        /// The item's id in the owner's queue.
        id: u64,
        /// The item, encoded with the wire codec.
        #[serde(borrow, with = "serde_bytes")]
        item: &'a [u8],
    },
    /// Nothing is left (or this worker was replaced): exit.
    Retire,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frame;

    #[test]
    fn an_item_frame_fits_in_its_overhead() {
        let item = vec![7u8; 100_000];
        let message = ToWorker::Item {
            id: u64::MAX,
            item: &item,
        };
        let encoded = frame::encode(&message).unwrap();
        assert!(encoded.len() <= item.len() + ITEM_OVERHEAD);
        assert_eq!(frame::decode::<ToWorker<'_>>(&encoded).unwrap(), message);
    }

    #[test]
    fn a_request_round_trips() {
        let request = ToQueue::Next {
            generation: 3,
            finished: Some(Finished {
                id: 9,
                panic: Some("boom".into()),
            }),
        };
        let encoded = frame::encode(&request).unwrap();
        assert_eq!(frame::decode_owned::<ToQueue>(&encoded).unwrap(), request);
    }
}
