//! Circuit breakers (suitkaise's `Circuit` and `BreakingCircuit`), usable alone and as fields
//! of a shared value.
//!
//! Inside a share the state changes on the coordinator — one process trips, every process
//! sees it on its next read — and the backoff sleep happens in the caller, never on the
//! coordinator: the coordinator answers how long to sleep, and the proxy sleeps (or, with the
//! `*_without_sleep` forms, hands the duration back).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::protocol::share::FieldOp;
use crate::share::ApplyError;
use crate::share::field::{Field, SharedField, encode_reply, get_or_set};

/// The settings both circuits share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Backoff {
    num_shorts_to_trip: u32,
    sleep_time_after_trip: Duration,
    backoff_factor: f64,
    max_sleep_time: Duration,
    jitter: f64,
    current_sleep_time: Duration,
}

impl Backoff {
    fn new(num_shorts_to_trip: u32) -> Result<Self, Error> {
        if num_shorts_to_trip == 0 {
            return Err(Error::Config {
                problem: "a circuit needs `num_shorts_to_trip` of at least 1".into(),
            });
        }
        Ok(Self {
            num_shorts_to_trip,
            sleep_time_after_trip: Duration::ZERO,
            backoff_factor: 1.0,
            max_sleep_time: Duration::from_secs(10),
            jitter: 0.0,
            current_sleep_time: Duration::ZERO,
        })
    }

    /// The sleep for this trip (with jitter), then the backoff for the next one.
    fn trip_sleep(&mut self) -> Duration {
        let sleep = self.jittered(self.current_sleep_time);
        self.apply_backoff();
        sleep
    }

    fn apply_backoff(&mut self) {
        let next = self.current_sleep_time.as_secs_f64() * self.backoff_factor;
        let next = Duration::try_from_secs_f64(next).unwrap_or(self.max_sleep_time);
        self.current_sleep_time = next.min(self.max_sleep_time);
    }

    fn jittered(&self, sleep: Duration) -> Duration {
        if self.jitter <= 0.0 || sleep.is_zero() {
            return sleep;
        }
        let mut bytes = [0u8; 4];
        if getrandom::fill(&mut bytes).is_err() {
            return sleep;
        }
        // A uniform fraction in [-1, 1].
        let unit = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0;
        let factor = (1.0 + unit * self.jitter).max(0.0);
        Duration::try_from_secs_f64(sleep.as_secs_f64() * factor).unwrap_or(sleep)
    }
}

macro_rules! settings {
    () => {
        /// The sleep after the first trip (default none).
        pub fn sleep_time_after_trip(mut self, sleep: Duration) -> Self {
            self.backoff.sleep_time_after_trip = sleep;
            self.backoff.current_sleep_time = sleep;
            self
        }
        /// The factor each trip multiplies the sleep by (default 1).
        pub fn backoff_factor(mut self, factor: f64) -> Self {
            self.backoff.backoff_factor = factor;
            self
        }
        /// The longest sleep (default 10 s).
        pub fn max_sleep_time(mut self, max: Duration) -> Self {
            self.backoff.max_sleep_time = max;
            self
        }
        /// A random ± fraction applied to every sleep, clamped to [0, 1] (default 0).
        pub fn jitter(mut self, jitter: f64) -> Self {
            self.backoff.jitter = jitter.clamp(0.0, 1.0);
            self
        }
        /// The sleep the next trip will cause (before jitter).
        pub fn current_sleep_time(&self) -> Duration {
            self.backoff.current_sleep_time
        }
        /// Restores the sleep to `sleep_time_after_trip`.
        pub fn reset_backoff(&mut self) {
            self.backoff.current_sleep_time = self.backoff.sleep_time_after_trip;
        }
    };
}

/// A circuit that resets itself: every `num_shorts_to_trip` shorts it trips, sleeps, and
/// closes again, with the sleep growing by `backoff_factor` up to `max_sleep_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Circuit {
    backoff: Backoff,
    times_shorted: u32,
    total_trips: u64,
}

impl Circuit {
    /// A circuit that trips after `num_shorts_to_trip` shorts (at least 1).
    pub fn new(num_shorts_to_trip: u32) -> Result<Self, Error> {
        Ok(Self {
            backoff: Backoff::new(num_shorts_to_trip)?,
            times_shorted: 0,
            total_trips: 0,
        })
    }

    settings!();

    /// Counts a failure; at the threshold it trips and sleeps. Whether it tripped.
    pub fn short(&mut self) -> bool {
        let sleep = self.short_without_sleep();
        sleep.inspect(|sleep| std::thread::sleep(*sleep)).is_some()
    }

    /// Trips now and sleeps. Always `true`.
    pub fn trip(&mut self) -> bool {
        std::thread::sleep(self.trip_without_sleep());
        true
    }

    /// [`short`](Circuit::short) without sleeping: the sleep the caller owes, if it tripped.
    pub fn short_without_sleep(&mut self) -> Option<Duration> {
        self.times_shorted += 1;
        (self.times_shorted >= self.backoff.num_shorts_to_trip).then(|| self.trip_without_sleep())
    }

    /// [`trip`](Circuit::trip) without sleeping: the sleep the caller owes.
    pub fn trip_without_sleep(&mut self) -> Duration {
        self.total_trips += 1;
        self.times_shorted = 0;
        self.backoff.trip_sleep()
    }

    /// Shorts since the last trip.
    pub fn times_shorted(&self) -> u32 {
        self.times_shorted
    }

    /// Trips so far.
    pub fn total_trips(&self) -> u64 {
        self.total_trips
    }
}

/// A circuit that stays open once broken, until [`reset`](BreakingCircuit::reset).
/// `total_trips` counts every short and trip (suitkaise's meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakingCircuit {
    backoff: Backoff,
    broken: bool,
    times_shorted: u32,
    total_trips: u64,
}

impl BreakingCircuit {
    /// A circuit that breaks after `num_shorts_to_trip` shorts (at least 1).
    pub fn new(num_shorts_to_trip: u32) -> Result<Self, Error> {
        Ok(Self {
            backoff: Backoff::new(num_shorts_to_trip)?,
            broken: false,
            times_shorted: 0,
            total_trips: 0,
        })
    }

    settings!();

    /// Counts a failure; at the threshold the circuit breaks and sleeps.
    pub fn short(&mut self) {
        if let Some(sleep) = self.short_without_sleep() {
            std::thread::sleep(sleep)
        }
    }

    /// Breaks the circuit now and sleeps.
    pub fn trip(&mut self) {
        std::thread::sleep(self.trip_without_sleep())
    }

    /// [`short`](BreakingCircuit::short) without sleeping: the sleep the caller owes, if it
    /// broke.
    pub fn short_without_sleep(&mut self) -> Option<Duration> {
        self.times_shorted += 1;
        self.total_trips += 1;
        if self.times_shorted < self.backoff.num_shorts_to_trip {
            return None;
        }
        self.broken = true;
        self.times_shorted = 0;
        Some(self.backoff.jittered(self.backoff.current_sleep_time))
    }

    /// [`trip`](BreakingCircuit::trip) without sleeping: the sleep the caller owes.
    pub fn trip_without_sleep(&mut self) -> Duration {
        self.total_trips += 1;
        self.broken = true;
        self.backoff.jittered(self.backoff.current_sleep_time)
    }

    /// Closes the circuit again and applies the backoff to the next sleep.
    pub fn reset(&mut self) {
        self.broken = false;
        self.times_shorted = 0;
        self.backoff.apply_backoff();
    }

    /// Whether the circuit is broken.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Shorts since the circuit last broke or was reset.
    pub fn times_shorted(&self) -> u32 {
        self.times_shorted
    }

    /// Shorts and trips so far.
    pub fn total_trips(&self) -> u64 {
        self.total_trips
    }
}

/// What a read of a shared circuit returns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CircuitState {
    /// Whether broken (always `false` for a self-resetting [`Circuit`]).
    pub broken: bool,
    /// Shorts since the last trip or reset.
    pub times_shorted: u32,
    /// Trips so far (for a [`BreakingCircuit`]: shorts and trips).
    pub total_trips: u64,
    /// The sleep the next trip will cause.
    pub current_sleep_time: Duration,
}

impl SharedField for Circuit {
    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::Short => encode_reply(&self.short_without_sleep(), reply),
            FieldOp::Trip => encode_reply(&self.trip_without_sleep(), reply),
            FieldOp::ResetBackoff => {
                self.reset_backoff();
                Ok(())
            }
            FieldOp::Stats => encode_reply(
                &CircuitState {
                    broken: false,
                    times_shorted: self.times_shorted,
                    total_trips: self.total_trips,
                    current_sleep_time: self.backoff.current_sleep_time,
                },
                reply,
            ),
            op => get_or_set(self, op, args, reply),
        }
    }
}

impl SharedField for BreakingCircuit {
    fn apply(&mut self, op: FieldOp, args: &[u8], reply: &mut Vec<u8>) -> Result<(), ApplyError> {
        match op {
            FieldOp::Short => encode_reply(&self.short_without_sleep(), reply),
            FieldOp::Trip => encode_reply(&self.trip_without_sleep(), reply),
            FieldOp::Reset => {
                self.reset();
                Ok(())
            }
            FieldOp::ResetBackoff => {
                self.reset_backoff();
                Ok(())
            }
            FieldOp::Stats => encode_reply(
                &CircuitState {
                    broken: self.broken,
                    times_shorted: self.times_shorted,
                    total_trips: self.total_trips,
                    current_sleep_time: self.backoff.current_sleep_time,
                },
                reply,
            ),
            op => get_or_set(self, op, args, reply),
        }
    }
}

impl Field<Circuit> {
    /// Counts a failure on the coordinator; if it tripped, sleeps here. Whether it tripped.
    pub fn short(&self) -> Result<bool, Error> {
        let sleep = self.short_without_sleep()?;
        Ok(sleep.inspect(|sleep| std::thread::sleep(*sleep)).is_some())
    }
    /// Counts a failure; the sleep this caller owes if it tripped, not slept.
    pub fn short_without_sleep(&self) -> Result<Option<Duration>, Error> {
        self.call(FieldOp::Short, &())
    }
    /// Trips on the coordinator and sleeps here.
    pub fn trip(&self) -> Result<(), Error> {
        std::thread::sleep(self.call::<_, Duration>(FieldOp::Trip, &())?);
        Ok(())
    }
    /// Restores the base sleep (a write).
    pub fn reset_backoff(&self) {
        self.write(FieldOp::ResetBackoff, &())
    }
    /// The circuit's counters.
    pub fn state(&self) -> Result<CircuitState, Error> {
        self.call(FieldOp::Stats, &())
    }
}

impl Field<BreakingCircuit> {
    /// Counts a failure on the coordinator; if it broke, sleeps here.
    pub fn short(&self) -> Result<(), Error> {
        if let Some(sleep) = self.short_without_sleep()? {
            std::thread::sleep(sleep);
        }
        Ok(())
    }
    /// Counts a failure; the sleep this caller owes if it broke, not slept.
    pub fn short_without_sleep(&self) -> Result<Option<Duration>, Error> {
        self.call(FieldOp::Short, &())
    }
    /// Breaks the circuit on the coordinator and sleeps here.
    pub fn trip(&self) -> Result<(), Error> {
        std::thread::sleep(self.trip_without_sleep()?);
        Ok(())
    }
    /// Breaks the circuit; the sleep this caller owes, not slept.
    pub fn trip_without_sleep(&self) -> Result<Duration, Error> {
        self.call(FieldOp::Trip, &())
    }
    /// Closes the circuit and applies the backoff (a write).
    pub fn reset(&self) {
        self.write(FieldOp::Reset, &())
    }
    /// Restores the base sleep (a write).
    pub fn reset_backoff(&self) {
        self.write(FieldOp::ResetBackoff, &())
    }
    /// Whether the circuit is broken.
    pub fn broken(&self) -> Result<bool, Error> {
        Ok(self.state()?.broken)
    }
    /// The circuit's counters.
    pub fn state(&self) -> Result<CircuitState, Error> {
        self.call(FieldOp::Stats, &())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaking_circuit_counts_every_short_and_trip() {
        let mut circuit = BreakingCircuit::new(2).unwrap();
        assert_eq!(circuit.short_without_sleep(), None);
        assert_eq!(circuit.short_without_sleep(), Some(Duration::ZERO));
        assert!(circuit.broken());
        circuit.reset();
        assert!(!circuit.broken());
        circuit.short_without_sleep();
        circuit.trip_without_sleep();
        assert_eq!(circuit.total_trips(), 4);
    }

    #[test]
    fn circuit_resets_itself_with_backoff() {
        let mut circuit = Circuit::new(2)
            .unwrap()
            .sleep_time_after_trip(Duration::from_millis(10))
            .backoff_factor(2.0)
            .max_sleep_time(Duration::from_millis(30));
        assert_eq!(circuit.short_without_sleep(), None);
        assert_eq!(
            circuit.short_without_sleep(),
            Some(Duration::from_millis(10))
        );
        assert_eq!(circuit.times_shorted(), 0);
        assert_eq!(circuit.trip_without_sleep(), Duration::from_millis(20));
        assert_eq!(circuit.trip_without_sleep(), Duration::from_millis(30));
        assert_eq!(circuit.total_trips(), 3);
        circuit.reset_backoff();
        assert_eq!(circuit.current_sleep_time(), Duration::from_millis(10));
        assert!(Circuit::new(0).is_err());
    }
}
