//! The child's hook watchdog: reports a hook that overruns its limit.
//!
//! A hook cannot be interrupted safely from outside, and a hook that catches everything could
//! swallow a cooperative cancellation, so in a child process an overrun ends the whole
//! process ([`ReportOverrun`] decides): the parent then sees the `TimedOut` report followed by
//! the end of the connection and restarts the child from its last checkpoint while lives
//! remain. A pool worker reports the overrun as its item's failure instead.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::hook::Hook;
use crate::protocol::lifecycle::ToParent;
use crate::transport::Connection;

/// Where an overrun goes. It may end the process (a child must: the hook cannot be stopped);
/// when it returns, the watchdog stops and the abandoned hook runs on unwatched.
pub(crate) trait ReportOverrun: Send + Sync {
    /// Reports the overrun of the hook that was armed.
    fn report_overrun(&self, overrun: Overrun);
}

/// A lifecycle child's report: the `TimedOut` message on its connection, then the end of the
/// process.
pub(crate) struct EndChild(pub(crate) Arc<Connection>);

impl ReportOverrun for EndChild {
    fn report_overrun(&self, overrun: Overrun) {
        // Best effort: the parent knows the deadline and reports a timeout regardless.
        let _ = self.0.send_within(&overrun.message(), REPORT_GRACE);
        exit_now();
    }
}

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
    /// The failure this overrun stands for.
    pub(crate) fn into_failure(self) -> Failure {
        match self {
            Overrun::TimedOut { hook, limit, run } => Failure::Timeout { hook, limit, run },
            Overrun::Failed(failure) => failure,
        }
    }

    /// Whether a process with lives left may be tried again after this overrun: a timed-out
    /// iteration hook may, an `onfinish`, `result` or `error` hook may not.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Overrun::TimedOut { hook, .. } => hook.is_iteration_hook(),
            Overrun::Failed(_) => false,
        }
    }

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
    /// Set when the [`Watchdog`] is dropped: its thread ends.
    dropped: bool,
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
    /// Starts the watchdog thread; it reports through `reporter`.
    pub(crate) fn start(reporter: Arc<dyn ReportOverrun>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("skprocess-watchdog".into())
            .spawn(move || watch(&watched, &*reporter))?;
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

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.lock().dropped = true;
        self.shared.changed.notify_one();
    }
}

fn watch(shared: &Shared, reporter: &dyn ReportOverrun) {
    let mut armed = shared.armed.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if armed.dropped {
            return;
        }
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
            drop(armed);
            reporter.report_overrun(report);
            return;
        }
    }
}

/// Ends the process without running exit handlers or flushing stdio: the abandoned hook may
/// hold the very locks those would take.
pub(crate) fn exit_now() -> ! {
    crate::sys::exit_now(EXIT_TIMED_OUT)
}
