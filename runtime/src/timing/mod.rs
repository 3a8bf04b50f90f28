//! `Sktimer`: a sample collector with the statistics of suitkaise's timer, and the per-hook
//! timers of a process.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::hook::{Hook, PerHook};

mod samples;
pub(crate) use samples::{PackedSamples, SampleBuffer, Slot};

/// Collects duration samples and computes statistics over them.
///
/// Statistics are `None` when there are no samples (`stdev`/`variance` need two). With
/// [`with_max_times`](Sktimer::with_max_times) only the most recent samples are kept, as a
/// rolling window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sktimer {
    samples: VecDeque<Duration>,
    max_times: Option<usize>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Sktimer {
    /// An empty timer that keeps every sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty timer that keeps only the last `max_times` samples.
    pub fn with_max_times(max_times: usize) -> Self {
        Self {
            max_times: Some(max_times),
            ..Self::default()
        }
    }

    /// Starts a measurement; a running one is restarted.
    pub fn start(&mut self) {
        self.started = Some(Instant::now());
    }

    /// Ends the running measurement, records it and returns it; `None` if none was running.
    pub fn record(&mut self) -> Option<Duration> {
        let elapsed = self.started.take()?.elapsed();
        self.add_time(elapsed);
        Some(elapsed)
    }

    /// Ends the running measurement without recording it.
    pub fn discard(&mut self) {
        self.started = None;
    }

    /// Records a sample directly.
    pub fn add_time(&mut self, sample: Duration) {
        self.samples.push_back(sample);
        if let Some(max) = self.max_times {
            while self.samples.len() > max {
                self.samples.pop_front();
            }
        }
    }

    /// Forgets every sample.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.started = None;
    }

    /// Number of samples kept.
    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Duration> + '_ {
        self.samples.iter().copied()
    }

    /// The i-th sample kept, oldest first.
    pub fn get_time(&self, index: usize) -> Option<Duration> {
        self.samples.get(index).copied()
    }

    /// The most recent sample.
    pub fn most_recent(&self) -> Option<Duration> {
        self.samples.back().copied()
    }

    /// Sum of the samples.
    pub fn total(&self) -> Duration {
        self.samples.iter().sum()
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.samples.len();
        (n > 0).then(|| Duration::from_secs_f64(self.total().as_secs_f64() / n as f64))
    }

    /// Median (the 50th percentile).
    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// Shortest sample.
    pub fn min(&self) -> Option<Duration> {
        self.samples.iter().min().copied()
    }

    /// Longest sample.
    pub fn max(&self) -> Option<Duration> {
        self.samples.iter().max().copied()
    }

    /// Sample variance (n − 1), in seconds squared; needs two samples.
    pub fn variance(&self) -> Option<f64> {
        let n = self.samples.len();
        if n < 2 {
            return None;
        }
        let mean = self.total().as_secs_f64() / n as f64;
        let squares: f64 = self
            .samples
            .iter()
            .map(|s| (s.as_secs_f64() - mean).powi(2))
            .sum();
        Some(squares / (n - 1) as f64)
    }

    /// Sample standard deviation (n − 1); needs two samples.
    pub fn stdev(&self) -> Option<Duration> {
        self.variance().map(|v| Duration::from_secs_f64(v.sqrt()))
    }

    /// The `p`-th percentile (0 ≤ p ≤ 100) with linear interpolation between neighbours;
    /// `None` without samples or for `p` outside the range.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() || !(0.0..=100.0).contains(&p) {
            return None;
        }
        let mut sorted: Vec<f64> = self.samples.iter().map(Duration::as_secs_f64).collect();
        sorted.sort_by(f64::total_cmp);
        let rank = p / 100.0 * (sorted.len() - 1) as f64;
        let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
        let value = sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64);
        Some(Duration::from_secs_f64(value))
    }
}

/// Samples each process timer keeps: statistics cover the most recent this many, so an
/// endless process does not grow without bound.
pub const PROCESS_TIMER_WINDOW: usize = 10_000;

/// One timer per hook plus `full_run` (prerun + run + postrun of each completed iteration),
/// each keeping the last [`PROCESS_TIMER_WINDOW`] samples.
///
/// `prerun`, `run` and `postrun` count the calls that succeeded; `onfinish`, `result` and
/// `error` count every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessTimers {
    /// One timer per hook.
    pub hooks: PerHook<Sktimer>,
    /// Whole completed iterations.
    pub full_run: Sktimer,
}

impl Default for ProcessTimers {
    fn default() -> Self {
        Self {
            hooks: PerHook::from_fn(|_| Sktimer::with_max_times(PROCESS_TIMER_WINDOW)),
            full_run: Sktimer::with_max_times(PROCESS_TIMER_WINDOW),
        }
    }
}

impl ProcessTimers {
    /// The timer of `hook`.
    pub fn hook(&self, hook: Hook) -> &Sktimer {
        self.hooks.get(hook)
    }

    /// Every sample kept, tagged with its timer, oldest first per timer.
    pub(crate) fn samples(&self) -> SampleBuffer {
        let hooks = self
            .hooks
            .iter()
            .flat_map(|(hook, timer)| timer.samples().map(move |s| (Slot::Hook(hook), s)));
        let full_runs = self.full_run.samples().map(|s| (Slot::FullRun, s));
        let mut buffer = SampleBuffer::default();
        for (slot, sample) in hooks.chain(full_runs) {
            buffer.push(slot, sample);
        }
        buffer
    }

    /// Records every sample of `samples`.
    pub(crate) fn record_packed(&mut self, samples: PackedSamples<'_>) {
        for (slot, sample) in samples.iter() {
            self.record(slot, sample);
        }
    }

    /// Records one sample.
    pub(crate) fn record(&mut self, slot: Slot, sample: Duration) {
        match slot {
            Slot::Hook(hook) => self.hooks.get_mut(hook).add_time(sample),
            Slot::FullRun => self.full_run.add_time(sample),
        }
    }

    /// A table with one row per hook that has samples, for printing.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<9} {:>6} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
            "hook", "count", "mean", "median", "p95", "max", "total"
        );
        let hooks = self.hooks.iter().map(|(hook, timer)| (hook.name(), timer));
        let rows = hooks.chain([("full_run", &self.full_run)]);
        for (name, timer) in rows.filter(|(_, t)| t.count() > 0) {
            out.push_str(&format!(
                "{name:<9} {:>6} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
                timer.count(),
                fmt_opt(timer.mean()),
                fmt_opt(timer.median()),
                fmt_opt(timer.percentile(95.0)),
                fmt_opt(timer.max()),
                fmt_opt(Some(timer.total())),
            ));
        }
        out
    }
}

/// Now, on the monotonic clock that every process on this machine shares (an [`Instant`] is
/// private to its process), in nanoseconds.
pub(crate) use crate::sys::monotonic_nanos;

/// The [`Instant`] of this process at which the shared monotonic clock read `nanos`.
pub(crate) fn monotonic_instant(nanos: u64) -> Instant {
    let (now, now_nanos) = (Instant::now(), monotonic_nanos());
    let shifted = if nanos <= now_nanos {
        now.checked_sub(Duration::from_nanos(now_nanos - nanos))
    } else {
        now.checked_add(Duration::from_nanos(nanos - now_nanos))
    };
    shifted.unwrap_or(now)
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{d:.3?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(samples: &[f64]) -> Sktimer {
        let mut timer = Sktimer::new();
        for &s in samples {
            timer.add_time(Duration::from_secs_f64(s));
        }
        timer
    }

    fn close(d: Option<Duration>, expected: f64) -> bool {
        d.is_some_and(|d| (d.as_secs_f64() - expected).abs() < 1e-9)
    }

    #[test]
    fn worked_example_of_the_spec() {
        let t = secs(&[1.0, 2.0, 3.0]);
        assert!(close(t.mean(), 2.0) && close(t.median(), 2.0));
        assert!(close(t.stdev(), 1.0));
        assert!((t.variance().unwrap() - 1.0).abs() < 1e-9);
        assert!(close(Some(t.total()), 6.0));
        assert!(close(t.percentile(95.0), 2.9));
        assert!(close(t.min(), 1.0) && close(t.max(), 3.0));
        assert!(close(secs(&[1.5, 2.3, 1.8]).mean(), 5.6 / 3.0));
    }

    #[test]
    fn empty_and_single_sample_statistics() {
        let empty = Sktimer::new();
        assert_eq!(empty.count(), 0);
        assert!(empty.mean().is_none() && empty.median().is_none() && empty.max().is_none());
        let one = secs(&[0.5]);
        assert!(one.stdev().is_none() && one.variance().is_none());
        assert!(close(one.percentile(0.0), 0.5) && close(one.percentile(100.0), 0.5));
        assert!(one.percentile(101.0).is_none() && one.percentile(-1.0).is_none());
    }

    #[test]
    fn rolling_window_keeps_the_latest_samples() {
        let mut t = Sktimer::with_max_times(2);
        for s in [1, 2, 3] {
            t.add_time(Duration::from_secs(s));
        }
        assert_eq!(t.count(), 2);
        assert_eq!(t.get_time(0), Some(Duration::from_secs(2)));
        assert_eq!(t.most_recent(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn start_stop_records_and_discard_does_not() {
        let mut t = Sktimer::new();
        assert!(t.record().is_none());
        t.start();
        t.discard();
        assert_eq!(t.count(), 0);
        t.start();
        assert!(t.record().is_some());
        assert_eq!(t.count(), 1);
    }

    #[test]
    fn the_shared_clock_converts_to_instants() {
        let before = Instant::now();
        let converted = monotonic_instant(monotonic_nanos());
        let after = Instant::now();
        let slack = Duration::from_millis(5);
        assert!(converted + slack >= before && converted <= after + slack);
    }

    #[test]
    fn samples_list_every_timer() {
        let mut timers = ProcessTimers::default();
        timers.record(Slot::Hook(Hook::Run), Duration::from_millis(1));
        timers.record(Slot::FullRun, Duration::from_millis(2));
        assert_eq!(
            timers.samples().all().iter().collect::<Vec<_>>(),
            [
                (Slot::Hook(Hook::Run), Duration::from_millis(1)),
                (Slot::FullRun, Duration::from_millis(2))
            ]
        );
        assert!(timers.table().contains("full_run"));
    }
}
