//! [`Sktimer`] as a shared field: samples are recorded with `add_time` (a write) and the
//! statistics are computed on the coordinator, so only the numbers travel. Measuring
//! (`start`/`record`) is local by nature: measure with a local timer and `add_time` the result;
//! the proxy has no `start` or `record`, so calling them on a shared timer does not compile.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::protocol::share::FieldOp;
use crate::share::ApplyError;
use crate::share::field::{Field, SharedField, decode_args, encode_reply, get_or_set};
use crate::timing::Sktimer;

/// A snapshot of an [`Sktimer`]'s statistics (`None` where there are too few samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimerStats {
    /// Number of samples.
    pub num_times: usize,
    /// The most recent sample.
    pub most_recent: Option<Duration>,
    /// Sum of the samples.
    pub total: Duration,
    /// Arithmetic mean.
    pub mean: Option<Duration>,
    /// Median.
    pub median: Option<Duration>,
    /// Shortest sample.
    pub min: Option<Duration>,
    /// Longest sample.
    pub max: Option<Duration>,
    /// Sample standard deviation (n − 1).
    pub stdev: Option<Duration>,
    /// Sample variance (n − 1), in seconds squared.
    pub variance: Option<f64>,
}

impl TimerStats {
    /// The statistics of `timer`.
    pub fn of(timer: &Sktimer) -> Self {
        Self {
            num_times: timer.count(),
            most_recent: timer.most_recent(),
            total: timer.total(),
            mean: timer.mean(),
            median: timer.median(),
            min: timer.min(),
            max: timer.max(),
            stdev: timer.stdev(),
            variance: timer.variance(),
        }
    }
}

impl SharedField for Sktimer {
    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::AddTime => self.add_time(decode_args(args)?),
            FieldOp::Stats => encode_reply(&TimerStats::of(self), reply)?,
            FieldOp::Percentile => {
                let p: f64 = decode_args(args)?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(ApplyError::Failed(format!(
                        "percentile {p} is outside 0 ≤ p ≤ 100"
                    )));
                }
                encode_reply(&self.percentile(p), reply)?
            }
            FieldOp::GetAt => encode_reply(&self.get_time(decode_args(args)?), reply)?,
            FieldOp::Len => encode_reply(&self.count(), reply)?,
            FieldOp::Reset => self.reset(),
            op => return get_or_set(self, op, args, reply),
        }
        Ok(())
    }
}

impl Field<Sktimer> {
    /// Records a sample (a write).
    pub fn add_time(&self, sample: Duration) {
        self.write(FieldOp::AddTime, &sample)
    }
    /// The number of samples.
    pub fn num_times(&self) -> Result<usize, Error> {
        self.call(FieldOp::Len, &())
    }
    /// Every statistic at once, computed on the coordinator.
    pub fn stats(&self) -> Result<TimerStats, Error> {
        self.call(FieldOp::Stats, &())
    }
    /// The `p`-th percentile (0 ≤ p ≤ 100; outside that range is an error), interpolated.
    pub fn percentile(&self, p: f64) -> Result<Option<Duration>, Error> {
        self.call(FieldOp::Percentile, &p)
    }
    /// Sample number `index`.
    pub fn get_time(&self, index: usize) -> Result<Option<Duration>, Error> {
        self.call(FieldOp::GetAt, &index)
    }
    /// Forgets every sample (a write).
    pub fn reset(&self) {
        self.write(FieldOp::Reset, &())
    }
}
