//! The child's hook watchdog: ends the child when a hook overruns its limit.
//!
//! A hook cannot be interrupted safely from outside, and a hook that catches everything could
//! swallow a cooperative cancellation, so an overrun ends the whole child process. The parent
//! then sees the `TimedOut` report followed by the end of the connection and restarts the
//! child from its last checkpoint while lives remain.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::context::Writer;
use crate::wire::ToParent;

/// Exit code of a child ended by its watchdog.
pub(crate) const EXIT_TIMED_OUT: i32 = 72;
/// How long the watchdog tries to report before exiting regardless.
const REPORT_GRACE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Armed {
    deadline: Option<(Instant, ToParent)>,
}

#[derive(Default)]
struct Shared {
    armed: Mutex<Armed>,
    changed: Condvar,
}

/// Arms a deadline around each hook that has a limit.
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
}

impl Watchdog {
    /// Starts the watchdog thread; it reports through `writer`.
    pub(crate) fn start(writer: Arc<Writer>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("skprocess-watchdog".into())
            .spawn(move || watch(&watched, &writer))?;
        Ok(Self { shared })
    }

    /// Ends the process with `report` unless [`disarm`](Watchdog::disarm) comes within `limit`.
    pub(crate) fn arm(&self, limit: Duration, report: ToParent) {
        let mut armed = self.lock();
        armed.deadline = Some((Instant::now() + limit, report));
        self.shared.changed.notify_one();
    }

    /// Cancels the current deadline.
    pub(crate) fn disarm(&self) {
        let mut armed = self.lock();
        armed.deadline = None;
        self.shared.changed.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.shared
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn watch(shared: &Shared, writer: &Writer) {
    let mut armed = shared.armed.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let Some((deadline, _)) = &armed.deadline else {
            armed = shared
                .changed
                .wait(armed)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !remaining.is_zero() {
            armed = shared
                .changed
                .wait_timeout(armed, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        if let Some((_, report)) = armed.deadline.take() {
            // Best effort: the parent still treats an exit with this code as a timeout.
            let _ = writer.send_within(&report, REPORT_GRACE);
        }
        exit_now();
    }
}

/// Ends the process without running exit handlers or flushing stdio: the abandoned hook may
/// hold the very locks those would take.
fn exit_now() -> ! {
    #[cfg(unix)]
    // SAFETY: `_exit` has no preconditions; it ends the process at once.
    unsafe {
        libc::_exit(EXIT_TIMED_OUT)
    }
    #[cfg(not(unix))]
    std::process::exit(EXIT_TIMED_OUT)
}
