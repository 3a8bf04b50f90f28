//! A worker process's results frame, kept whole on its way to the map's caller: the worker's
//! reader checks it once and lists its indices, the scheduler matches those against what the
//! worker holds, and the caller reads each output in place. No result is copied, counted or
//! given a shared handle of its own on the way.

use std::sync::Arc;

use crate::pool::shared_bytes::SharedBytes;
use crate::protocol::pool::{ItemFailure, Measured, ResultsReader, WireOutcome};
use crate::transport::frame::WireError;

/// A results frame that was read whole once (so reading it again cannot fail).
#[derive(Debug, Clone)]
pub(crate) struct ResultsFrame {
    frame: Arc<[u8]>,
}

/// What reading a results frame found.
pub(crate) struct ReadResults {
    pub(crate) job: u64,
    /// Each result's index, in order.
    pub(crate) indices: Vec<u64>,
    pub(crate) measured: Option<Measured>,
    pub(crate) frame: ResultsFrame,
}

impl ResultsFrame {
    /// Reads `frame` whole when it is a results frame (`None` when it is another message);
    /// `Err` when it is malformed.
    pub(crate) fn read(frame: Arc<[u8]>) -> Option<Result<ReadResults, WireError>> {
        let mut reader = ResultsReader::open(&frame)?;
        let job = reader.job;
        let mut indices = Vec::with_capacity(reader.len_hint());
        let read = loop {
            match reader.next_result() {
                Some(Ok(result)) => indices.push(result.index),
                Some(Err(error)) => break Err(error),
                None => break reader.finish(),
            }
        };
        Some(read.map(|measured| ReadResults {
            job,
            indices,
            measured,
            frame: ResultsFrame {
                frame: Arc::clone(&frame),
            },
        }))
    }

    /// Each result in order: its index and its output, or why it has none.
    pub(crate) fn each(&self, mut result: impl FnMut(u64, Result<&[u8], ItemFailure>)) {
        let Some(mut reader) = ResultsReader::open(&self.frame) else {
            return;
        };
        // Read whole before it got here: every result reads again.
        while let Some(Ok(next)) = reader.next_result() {
            match next.outcome {
                WireOutcome::Output(bytes) => result(next.index, Ok(bytes)),
                WireOutcome::Failed(failure) => result(next.index, Err(failure)),
            }
        }
    }

    /// `bytes`, an output read from this frame ([`each`](Self::each)), sharing the frame.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn share(&self, bytes: &[u8]) -> SharedBytes {
        let range = SharedBytes::range_in(&self.frame, bytes).unwrap_or(0..0);
        SharedBytes::new(Arc::clone(&self.frame), range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pool::{ToPool, WireResult};
    use crate::transport::frame;

    #[test]
    fn a_results_frame_is_read_whole_once_and_then_result_by_result() {
        let failure = ItemFailure::Decode("bad".into());
        let message = ToPool::Results {
            job: 4,
            results: vec![
                WireResult {
                    index: 7,
                    outcome: WireOutcome::Output(&[1, 2, 3]),
                },
                WireResult {
                    index: u64::MAX,
                    outcome: WireOutcome::Failed(failure.clone()),
                },
                WireResult {
                    index: 8,
                    outcome: WireOutcome::Output(&[]),
                },
            ],
            measured: Some(Measured { items: 3, nanos: 9 }),
        };
        let encoded: Arc<[u8]> = Arc::from(frame::encode(&message).unwrap());
        let Some(Ok(read)) = ResultsFrame::read(Arc::clone(&encoded)) else {
            panic!("not read");
        };
        assert_eq!((read.job, &read.indices[..]), (4, &[7, u64::MAX, 8][..]));
        assert_eq!(read.measured.map(|m| (m.items, m.nanos)), Some((3, 9)));
        let mut each = Vec::new();
        read.frame
            .each(|index, outcome| each.push((index, outcome.map(<[u8]>::to_vec))));
        assert_eq!(
            each,
            [
                (7, Ok(vec![1, 2, 3])),
                (u64::MAX, Err(failure)),
                (8, Ok(vec![]))
            ]
        );
        // Cut short, or not results at all.
        let cut = Arc::from(&encoded[..encoded.len() - 3]);
        assert!(matches!(ResultsFrame::read(cut), Some(Err(_))));
        let ready: Arc<[u8]> = Arc::from(frame::encode(&ToPool::Ready).unwrap());
        assert!(ResultsFrame::read(ready).is_none());
    }
}
