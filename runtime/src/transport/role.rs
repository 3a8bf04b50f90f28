//! The reader role of a connection (leader/follower): one reader at a time, and a thread
//! waiting for a message reads for itself.
//!
//! A blocking read wakes only the thread that sits in it, so the cheapest way to hand a
//! message to a waiting thread is to let that thread read. Each end of a connection therefore
//! has two kinds of readers: *foreground* readers (a thread in `listen`), which take the role
//! when they find nothing queued and block in the read themselves, and one *background*
//! reader thread, which drains the connection only while no foreground reader holds the role,
//! so the peer never stalls and control frames are never stuck.
//!
//! Nobody ever blocks waiting for the role itself, since its holder may sit in a read for
//! long: foreground readers only try to take it; the background reader waits in
//! [`ReaderRole::wait_released`] for a bounded, growing while. It is woken early only when it
//! waits longer than [`SHORT_WAIT`], so a foreground reader that takes and lets go of the role
//! many times a millisecond never pays for a wake-up, and the background reader resumes at
//! most [`SHORT_WAIT`] after a busy stretch of listening ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::sys::{Source, Stream, wait_readable};

/// The first wait of the background reader while the role is held, and the longest one
/// nobody cuts short.
pub(crate) const SHORT_WAIT: Duration = Duration::from_millis(1);

/// The role: the state its holder reads with (`T`), and the background reader's waiting room.
#[derive(Debug, Default)]
pub(crate) struct ReaderRole<T> {
    role: Mutex<T>,
    /// Held by the background reader from announcing a long wait until it waits.
    background: Mutex<()>,
    woken: Condvar,
    /// The background reader waits for longer than [`SHORT_WAIT`]: letting go must wake it.
    waits_long: AtomicBool,
}

impl<T> ReaderRole<T> {
    pub(crate) fn new(state: T) -> Self {
        Self {
            role: Mutex::new(state),
            background: Mutex::new(()),
            woken: Condvar::new(),
            waits_long: AtomicBool::new(false),
        }
    }

    /// Takes the role if nobody holds it. A foreground reader calls
    /// [`released`](ReaderRole::released) after dropping the guard.
    pub(crate) fn try_take(&self) -> Option<MutexGuard<'_, T>> {
        match self.role.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Takes the role, waiting for its holder: only for callers who know no holder is blocked
    /// in a read (the connection ended, or none was installed yet).
    pub(crate) fn take(&self) -> MutexGuard<'_, T> {
        self.role.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether someone holds the role right now.
    pub(crate) fn is_held(&self) -> bool {
        self.try_take().is_none()
    }

    /// A foreground reader let go of the role: wakes the background reader if it waits long.
    pub(crate) fn released(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        // Taken, not only read: until the woken reader gets a core (on a busy or single CPU,
        // not before this thread blocks), every later let-go would wake it again, a system
        // call each. One wake is enough; a reader that waits long again says so again.
        if self.waits_long.swap(false, Ordering::SeqCst) {
            self.wake_background();
        }
    }

    /// Wakes the background reader now (something was handed to it).
    pub(crate) fn wake_background(&self) {
        drop(self.lock_background());
        self.woken.notify_all();
    }

    /// One turn of a background reader's loop: while a foreground reader holds the role, waits
    /// for it to be let go — longer each time in a row, up to `longest` — and says `true`
    /// (the caller looks again); `false` once the role is free (and the count starts over).
    pub(crate) fn yield_while_held(&self, held_in_a_row: &mut u32, longest: Duration) -> bool {
        if !self.is_held() {
            *held_in_a_row = 0;
            return false;
        }
        let woken = self.wait_released(backoff(*held_in_a_row, longest), || false);
        *held_in_a_row = next_in_a_row(*held_in_a_row, woken);
        true
    }

    /// One turn of a background reader: yields while a foreground reader holds the role (see
    /// [`yield_while_held`](ReaderRole::yield_while_held)), waits without the role until
    /// `stream` has something to read — or at once when `pending` holds for the state (whole
    /// frames already buffered, an end already seen) — then takes the role if it is still free
    /// and there is still something to read. The guard to read with; `None` to look again
    /// (after `let_go`, when the role was taken only to find that a foreground reader had
    /// read it all meanwhile). `Err`: waiting on `stream` failed, so the connection is over.
    pub(crate) fn background_turn(
        &self,
        stream: &Stream,
        held_in_a_row: &mut u32,
        longest: Duration,
        pending: impl Fn(&T) -> bool,
        let_go: impl FnOnce(),
    ) -> std::io::Result<Option<MutexGuard<'_, T>>> {
        if self.yield_while_held(held_in_a_row, longest) {
            return Ok(None);
        }
        let waiting = self.try_take().is_some_and(|state| pending(&state));
        if !waiting && !readable(stream, None)? {
            return Ok(None);
        }
        // Taken meanwhile: that reader reads it.
        let Some(state) = self.try_take() else {
            return Ok(None);
        };
        if !pending(&state) && !readable(stream, Some(Duration::ZERO))? {
            drop(state);
            let_go();
            return Ok(None);
        }
        Ok(Some(state))
    }

    /// The background reader waits while the role is held: at most `timeout`, less when the
    /// role is let go (if `timeout` is longer than [`SHORT_WAIT`]), when woken, or not at all
    /// when `ready` already holds or the role is free. Returns whether it ended before
    /// `timeout` (see [`next_in_a_row`]).
    pub(crate) fn wait_released(&self, timeout: Duration, ready: impl Fn() -> bool) -> bool {
        let background = self.lock_background();
        let long = timeout > SHORT_WAIT;
        self.waits_long.store(long, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if ready() || !self.is_held() {
            self.waits_long.store(false, Ordering::SeqCst);
            return true;
        }
        // Woken early or not, the caller looks at everything again.
        let waited = self.woken.wait_timeout(background, timeout);
        self.waits_long.store(false, Ordering::SeqCst);
        waited.map_or(true, |(_, result)| !result.timed_out())
    }

    fn lock_background(&self) -> MutexGuard<'_, ()> {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Polls `stream` until it has something to read, `spin` passed or `deadline` came, without
/// sleeping: the opt-in low-latency wait of a foreground reader, before its blocking read.
pub(crate) fn spin_until_readable(stream: &Stream, spin: Duration, deadline: Option<Instant>) {
    if spin.is_zero() {
        return;
    }
    let Some(spin_end) = Instant::now().checked_add(spin) else {
        return;
    };
    let until = deadline.map_or(spin_end, |deadline| deadline.min(spin_end));
    let source = [Source::from(stream)];
    loop {
        let ready = wait_readable(&source, Some(Duration::ZERO));
        if !ready.is_ok_and(|ready| ready.iter().all(|r| !r.readable)) || Instant::now() >= until {
            return;
        }
        std::hint::spin_loop();
    }
}

/// The read timeout to give a socket for a read that must end `left` from now (`None`: no
/// limit): `left` rounded down to whole milliseconds (below one, exactly), so a reader that
/// waits as long again — a `listen` with the same timeout each time — finds it set already
/// and makes no system call for it. A read that times out before its deadline reads again.
pub(crate) fn read_timeout_for(left: Option<Duration>) -> Option<Duration> {
    left.map(|left| match left.as_millis() {
        0 => left,
        millis => Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)),
    })
}

/// Whether a read that timed out before `deadline` should read again.
pub(crate) fn still_before(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() < deadline)
}

/// Whether `stream` has something to read (data or its end), waiting at most `timeout`
/// (`None`: without limit).
pub(crate) fn readable(stream: &Stream, timeout: Option<Duration>) -> std::io::Result<bool> {
    let ready = wait_readable(&[Source::from(stream)], timeout)?;
    Ok(ready.iter().any(|r| r.readable || r.hung_up))
}

/// The background reader's count of waits in a row for a held role, after one that ended
/// early (`woken`: let go, handed something) or not. A wait cut short starts the count over,
/// so the next wait is a short one that no let-go interrupts: a listener that takes and lets
/// go of the role every few microseconds (a ping-pong) then wakes the background reader about
/// twice a millisecond, not at every let-go.
pub(crate) fn next_in_a_row(n: u32, woken: bool) -> u32 {
    if woken { 0 } else { n.saturating_add(1) }
}

/// How long the background reader waits the `n`th time in a row it finds the role held:
/// [`SHORT_WAIT`] doubled each time, up to `longest`.
pub(crate) fn backoff(n: u32, longest: Duration) -> Duration {
    SHORT_WAIT
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time() {
        let role = ReaderRole::new(0u8);
        let held = role.try_take().unwrap();
        assert!(role.try_take().is_none());
        assert!(role.is_held());
        drop(held);
        assert!(!role.is_held());
    }

    /// Waits, at most 30 s, until the background reader announced a long wait.
    fn wait_for_long_wait<T>(role: &ReaderRole<T>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !role.waits_long.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the background reader never began its long wait"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_long_wait_ends_when_the_role_is_let_go() {
        let role = Arc::new(ReaderRole::new(()));
        let held = role.try_take().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let background = {
            let role = Arc::clone(&role);
            std::thread::spawn(move || {
                role.wait_released(Duration::from_secs(3600), || false);
                done_tx.send(()).unwrap();
            })
        };
        // Let go only once the background reader announced its long wait.
        wait_for_long_wait(&role);
        drop(held);
        role.released();
        let bound = Duration::from_secs(30);
        assert!(done_rx.recv_timeout(bound).is_ok(), "woken by the release");
        background.join().unwrap();
    }

    #[test]
    fn a_wait_cut_short_by_a_let_go_is_followed_by_a_short_one() {
        let role = Arc::new(ReaderRole::new(()));
        let held = role.try_take().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let background = {
            let role = Arc::clone(&role);
            std::thread::spawn(move || {
                // Held many times in a row before: a wait of about a minute (a short one, of
                // a few milliseconds, could end before this test's thread saw it begin, under
                // load), which the let-go cuts short.
                let mut in_a_row = 16;
                assert!(role.yield_while_held(&mut in_a_row, Duration::from_secs(3600)));
                done_tx.send(in_a_row).unwrap();
            })
        };
        wait_for_long_wait(&role);
        drop(held);
        role.released();
        let in_a_row = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        background.join().unwrap();
        // The count starts over: the next wait is the short one no let-go interrupts.
        assert_eq!(in_a_row, 0);
        assert!(backoff(in_a_row, Duration::from_secs(3600)) <= SHORT_WAIT);
        assert_eq!(next_in_a_row(3, false), 4);
    }

    #[test]
    fn a_free_role_is_not_waited_for() {
        let role = ReaderRole::new(());
        role.wait_released(Duration::from_secs(60), || false);
    }

    #[test]
    fn a_read_timeout_is_rounded_down_to_whole_milliseconds() {
        assert_eq!(read_timeout_for(None), None);
        let just_under = Duration::from_millis(1000) - Duration::from_micros(3);
        assert_eq!(
            read_timeout_for(Some(just_under)),
            Some(Duration::from_millis(999))
        );
        let sooner = Duration::from_millis(1000) - Duration::from_micros(90);
        assert_eq!(
            read_timeout_for(Some(sooner)),
            read_timeout_for(Some(just_under))
        );
        let short = Duration::from_micros(700);
        assert_eq!(read_timeout_for(Some(short)), Some(short));
    }

    #[test]
    fn backoff_doubles_up_to_the_longest() {
        let longest = Duration::from_millis(50);
        assert_eq!(backoff(0, longest), SHORT_WAIT);
        assert_eq!(backoff(1, longest), SHORT_WAIT * 2);
        assert_eq!(backoff(40, longest), longest);
    }
}
