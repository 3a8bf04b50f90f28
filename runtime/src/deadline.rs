//! Deadlines as `Option<Instant>`, where `None` means no limit: every timeout that a user
//! gives becomes one with checked arithmetic, so `Duration::MAX` means "no limit" instead of
//! a panic.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// The deadline `timeout` from now; `None` (no deadline) for no timeout or one too long for
/// the clock, such as `Duration::MAX`.
pub(crate) fn after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Waits on `condvar` until it is notified or `deadline` comes. `Err` gives the guard back
/// without waiting when the deadline has already passed; callers re-check their condition
/// after an `Ok` either way.
pub(crate) fn wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> Result<MutexGuard<'a, T>, MutexGuard<'a, T>> {
    let Some(deadline) = deadline else {
        return Ok(condvar.wait(guard).unwrap_or_else(PoisonError::into_inner));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(guard);
    }
    let waited = condvar.wait_timeout(guard, left);
    Ok(waited.unwrap_or_else(PoisonError::into_inner).0)
}

/// Takes `mutex`, waiting no later than `deadline` (`None`: as long as it takes); `None` when
/// another thread still held it then. A poisoned lock is taken as it is: its holders keep
/// what they guard consistent at every step.
pub(crate) fn lock_before<T>(
    mutex: &Mutex<T>,
    deadline: Option<Instant>,
) -> Option<MutexGuard<'_, T>> {
    if deadline.is_none() {
        return Some(mutex.lock().unwrap_or_else(PoisonError::into_inner));
    }
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn too_long_a_timeout_is_no_deadline() {
        assert_eq!(after(Some(Duration::MAX)), None);
        assert_eq!(after(None), None);
        assert!(after(Some(Duration::from_secs(1))).is_some());
    }

    #[test]
    fn a_past_deadline_does_not_wait() {
        let (lock, condvar) = (Mutex::new(()), Condvar::new());
        let past = Some(Instant::now());
        assert!(wait(&condvar, lock.lock().unwrap(), past).is_err());
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(wait(&condvar, lock.lock().unwrap(), Some(soon)).is_ok());
    }
}
