//! The monotonic clock that every process on this machine shares (an `Instant` is private to
//! its process), so deadlines and timestamps can cross a process boundary.

/// Now, on the shared monotonic clock (`CLOCK_MONOTONIC`), in nanoseconds.
pub(crate) fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
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
}
