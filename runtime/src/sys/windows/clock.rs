//! The monotonic clock that every process on this machine shares (an `Instant` is private to
//! its process), so deadlines and timestamps can cross a process boundary: the performance
//! counter, which is one system-wide counter on every Windows since XP.

use std::sync::OnceLock;

use windows_sys::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};

/// Now, on the shared monotonic clock (`QueryPerformanceCounter`), in nanoseconds.
pub(crate) fn monotonic_nanos() -> u64 {
    let mut count = 0i64;
    // SAFETY: `count` is a valid out-parameter; the call cannot fail since Windows XP.
    unsafe { QueryPerformanceCounter(&mut count) };
    to_nanos(count, frequency())
}

/// Counter ticks per second (fixed at boot; read once).
fn frequency() -> i64 {
    static FREQUENCY: OnceLock<i64> = OnceLock::new();
    *FREQUENCY.get_or_init(|| {
        let mut frequency = 0i64;
        // SAFETY: as above.
        unsafe { QueryPerformanceFrequency(&mut frequency) };
        frequency
    })
}

/// `count` ticks at `frequency` per second, in nanoseconds (128-bit, so nothing overflows
/// before the result does; a result past `u64` saturates).
fn to_nanos(count: i64, frequency: i64) -> u64 {
    let (Ok(count), Ok(frequency)) = (u128::try_from(count), u128::try_from(frequency)) else {
        return 0;
    };
    if frequency == 0 {
        return 0;
    }
    u64::try_from(count.saturating_mul(1_000_000_000) / frequency).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_back() {
        let first = monotonic_nanos();
        assert!(first > 0);
        assert!(monotonic_nanos() >= first);
    }

    #[test]
    fn ticks_become_nanoseconds_without_overflow() {
        assert_eq!(to_nanos(10_000_000, 10_000_000), 1_000_000_000);
        assert_eq!(to_nanos(3, 3_000_000_000), 1);
        assert_eq!(to_nanos(i64::MAX, 1), u64::MAX);
        assert_eq!(to_nanos(-1, 10), 0);
        assert_eq!(to_nanos(5, 0), 0);
    }

    #[test]
    fn another_process_reads_the_same_clock() {
        // The counter is system-wide: a child's reading lies between two of ours.
        let before = monotonic_nanos();
        let child = super::super::process::tests::rerun("sys::windows::clock::tests::print_clock")
            .output()
            .unwrap();
        let after = monotonic_nanos();
        let text = String::from_utf8_lossy(&child.stdout);
        let theirs: u64 = super::super::process::tests::marked(&text, "clock=").unwrap();
        assert!(
            before <= theirs && theirs <= after,
            "{before} {theirs} {after}"
        );
    }

    /// Prints this process's clock when started by `another_process_reads_the_same_clock`.
    #[test]
    fn print_clock() {
        if super::super::process::tests::is_rerun() {
            println!("clock={}", monotonic_nanos());
        }
    }
}
