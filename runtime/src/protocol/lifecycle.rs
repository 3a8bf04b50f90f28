//! The lifecycle protocol: what a `#[skprocess]` child and its parent say to each other.
//!
//! | child → parent | meaning |
//! |---|---|
//! | `Tell` | a payload for `Handle::listen` (spends a credit) |
//! | `Credit` | room for more of the parent's `tell`s |
//! | `Progress` | runs done, lives left, time used, and the timer samples since the last when they fit; at most one per millisecond, newest wins |
//! | `Samples` | hook timer samples, in frames that always fit the limit |
//! | `Checkpoint` | the state after a completed iteration, when a restart could need it |
//! | `HookStarted` / `HookEnded` | a hook with a time limit began / ended |
//! | `TimedOut` | the watchdog's report, just before it ends the child |
//! | `Finishing` | iterations are over; `onfinish` and `result` run now |
//! | `HandlingError` | the `error` hook runs now for this failure |
//! | `Finished` / `Failed` | the terminal report; nothing follows |
//! | `UnknownType` / `SetupFailed` | the child could not begin |
//!
//! | parent → child | meaning |
//! |---|---|
//! | `Tell` | a payload for `Ctx::listen` (spends a credit) |
//! | `Credit` | room for more of the child's `tell`s |
//! | `Stop` | finish after the current hook |
//! | `DiscardOutbox` | nobody will read the child's `tell`s any more: send without waiting |
//! | `Samples` | timer samples so far, right after `Start` on a restart |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::hook::Hook;
use crate::timing::PackedSamples;

/// Messages from the child. `Tell` must stay the first variant (see [`tell_prefix`]).
///
/// [`tell_prefix`]: super::tell_prefix
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToParent<'a> {
    Tell(#[serde(with = "serde_bytes", borrow)] &'a [u8]),
    Credit(u32),
    Progress {
        progress: Progress,
        /// Timer samples not sent yet, when few enough to share the frame: one write and one
        /// wake-up of the parent where there were two.
        #[serde(borrow)]
        samples: PackedSamples<'a>,
    },
    Samples(#[serde(borrow)] PackedSamples<'a>),
    Checkpoint {
        #[serde(with = "serde_bytes", borrow)]
        state: &'a [u8],
        completed_runs: u64,
        /// Timer samples not sent yet, when few enough to share the frame.
        #[serde(borrow)]
        samples: PackedSamples<'a>,
    },
    HookStarted {
        hook: Hook,
        limit: Duration,
        run: u64,
        /// When the hook began, on the monotonic clock every process shares.
        started_nanos: u64,
    },
    HookEnded,
    TimedOut {
        hook: Hook,
        limit: Duration,
        run: u64,
    },
    Finishing,
    /// The `error` hook runs now for this failure; if it dies, the failure stands.
    HandlingError(Failure),
    Finished {
        #[serde(with = "serde_bytes", borrow)]
        output: &'a [u8],
        completed_runs: u64,
    },
    Failed(Failure),
    UnknownType(String),
    SetupFailed(String),
}

/// Messages from the parent. `Tell` must stay the first variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToChild<'a> {
    Tell(#[serde(with = "serde_bytes", borrow)] &'a [u8]),
    Credit(u32),
    Stop,
    DiscardOutbox,
    Samples(#[serde(borrow)] PackedSamples<'a>),
}

/// Where the child stands; sent now and then, each report replacing the last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) completed_runs: u64,
    pub(crate) lives_left: u32,
    pub(crate) usage: Usage,
}

/// Time the child spent in hooks and waiting for messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) busy: Duration,
    pub(crate) listening: Duration,
}

/// Where a (re)started child picks up: a fresh start, a restart from the last checkpoint, or
/// a child that only runs the `error` hook for a failure the parent observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Resume {
    pub(crate) completed_runs: u64,
    pub(crate) lives_left: u32,
    pub(crate) elapsed: Duration,
    pub(crate) stop: bool,
    pub(crate) usage: Usage,
    pub(crate) pending: Option<Failure>,
    /// Room left in the parent's queue for the child's `tell`s.
    pub(crate) outbox_credits: u32,
    /// Whether the parent already discards the child's `tell`s.
    pub(crate) discard_outbox: bool,
}

/// Largest encoded size of one timer sample (1 + 14 bytes packed), with room to spare.
const SAMPLE_BYTES: usize = 17;
/// Room a samples frame needs beside its samples.
const SAMPLES_OVERHEAD: usize = 16;

/// How many timer samples fit in one frame of at most `max_frame` bytes.
pub(crate) fn samples_per_frame(max_frame: u32) -> usize {
    (max_frame as usize).saturating_sub(SAMPLES_OVERHEAD) / SAMPLE_BYTES
}

/// Largest encoded [`Progress`] (three varints of up to 10 bytes, two of up to 5, one of 4).
const PROGRESS_BYTES: usize = 64;

/// How many timer samples fit beside a [`Progress`] in one frame of at most `max_frame` bytes.
pub(crate) fn samples_beside_progress(max_frame: u32) -> usize {
    samples_per_frame(max_frame).saturating_sub(PROGRESS_BYTES.div_ceil(SAMPLE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::{SampleBuffer, Slot};
    use crate::transport::frame;

    #[test]
    fn a_full_samples_frame_fits_the_smallest_limit() {
        let limit = 1024;
        let mut samples = SampleBuffer::default();
        for _ in 0..samples_per_frame(limit) {
            samples.push(
                Slot::Hook(Hook::Onfinish),
                Duration::new(u64::MAX, 999_999_999),
            );
        }
        let encoded = frame::encode_frame(&ToParent::Samples(samples.all()), limit);
        assert!(encoded.is_ok());
        assert!(frame::encode_frame(&ToChild::Samples(samples.all()), limit).is_ok());
    }

    #[test]
    fn a_full_progress_frame_fits_the_smallest_limit() {
        let limit = 1024;
        let mut samples = SampleBuffer::default();
        for _ in 0..samples_beside_progress(limit) {
            samples.push(Slot::FullRun, Duration::new(u64::MAX, 999_999_999));
        }
        let longest = Duration::new(u64::MAX, 999_999_999);
        let progress = Progress {
            completed_runs: u64::MAX,
            lives_left: u32::MAX,
            usage: Usage {
                busy: longest,
                listening: longest,
            },
        };
        assert!(frame::encoded_len(&progress).unwrap() <= PROGRESS_BYTES);
        let message = ToParent::Progress {
            progress,
            samples: samples.all(),
        };
        assert!(frame::encode_frame(&message, limit).is_ok());
    }
}
