//! The child's hook watchdog: ends the child when a hook overruns its limit.
//!
//! A hook cannot be interrupted safely from outside, and a hook that catches everything could
//! swallow a cooperative cancellation, so an overrun ends the whole child process. The parent
//! then sees the `TimedOut` report followed by the end of the connection and restarts the
//! child from its last checkpoint while lives remain.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::hook::Hook;
use crate::protocol::lifecycle::ToParent;
use crate::transport::Connection;

/// Exit code of a child ended by its watchdog. The parent does not rely on it: it knows the
/// hook's deadline, so a user's `exit(72)` is never mistaken for a timeout.
const EXIT_TIMED_OUT: i32 = 72;
/// How long the watchdog tries to report before exiting regardless.
const REPORT_GRACE: Duration = Duration::from_millis(200);

/// What the watchdog tells the parent before it ends the child.
pub(crate) enum Overrun {
    /// The hook timed out.
    TimedOut {
        hook: Hook,
        limit: Duration,
        run: u64,
    },
    /// The `error` hook timed out: the failure it was handling stands.
    Failed(Failure),
}

impl Overrun {
    fn message(&self) -> ToParent<'static> {
        match self {
            Overrun::TimedOut { hook, limit, run } => ToParent::TimedOut {
                hook: *hook,
                limit: *limit,
                run: *run,
            },
            Overrun::Failed(failure) => ToParent::Failed(failure.clone()),
        }
    }
}

#[derive(Default)]
struct Armed {
    deadline: Option<(Instant, Overrun)>,
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
    /// Starts the watchdog thread; it reports through `connection`.
    pub(crate) fn start(connection: Arc<Connection>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("skprocess-watchdog".into())
            .spawn(move || watch(&watched, &connection))?;
        Ok(Self { shared })
    }

    /// Ends the process with `report` unless [`disarm`](Watchdog::disarm) comes by `deadline`.
    pub(crate) fn arm(&self, deadline: Instant, report: Overrun) {
        let mut armed = self.lock();
        armed.deadline = Some((deadline, report));
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

fn watch(shared: &Shared, connection: &Connection) {
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
            // Best effort: the parent knows the deadline and reports a timeout regardless.
            let _ = connection.send_within(&report.message(), REPORT_GRACE);
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
