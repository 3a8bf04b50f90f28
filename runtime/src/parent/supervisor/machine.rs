//! The supervisor as a state machine without I/O: events in, actions out.
//!
//! It decides what a child's reports and its end mean — a result, a retry from the last
//! checkpoint, a hand-over to the `error` hook, a final failure — and when the parent must
//! kill a child whose hook overran. It never touches a process, a socket or a clock: the driver
//! feeds it events stamped with the time they happened and carries out what it returns. That is
//! what lets every interleaving of crashes, timeouts and kills be tested with plain values.

use std::time::{Duration, Instant};

use crate::error::{Error, Failure};
use crate::hook::Hook;
use crate::parent::exit::Exit;

/// How long past a hook's limit the parent waits for the child's own watchdog before it kills
/// the child itself (a stopped child, or one where no thread can run).
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_millis(200);

/// What the child reported.
#[derive(Debug)]
pub(crate) enum Report {
    /// Completed runs and lives left, as the child counts them.
    Progress {
        completed_runs: u64,
        lives_left: u32,
    },
    /// A checkpoint of the state after `completed_runs` iterations.
    Checkpoint {
        completed_runs: u64,
    },
    /// A hook with a time limit began at `started`.
    HookStarted {
        hook: Hook,
        limit: Duration,
        run: u64,
        started: Instant,
    },
    HookEnded,
    /// The watchdog's report, sent just before it ends the child.
    TimedOut {
        hook: Hook,
        limit: Duration,
        run: u64,
    },
    /// Iterations are over: `onfinish` and `result` run now, and are not retried.
    Finishing,
    /// The child runs its `error` hook for this failure; if the child dies, the failure stands.
    HandlingError(Failure),
    /// The terminal report of success.
    Finished,
    /// The terminal report of a failure.
    Failed(Failure),
    /// The child could not begin.
    SetupFailed(Error),
}

/// Something that happened to the supervised process.
#[derive(Debug)]
pub(crate) enum Event {
    Report(Report),
    /// The connection ended at `at` and the child is gone as `exit` says.
    Ended {
        exit: Exit,
        at: Instant,
    },
    /// A replacement child could not be started.
    SpawnFailed(Error),
    /// The user killed the process.
    KillRequested,
    /// Time passed; `now` is the current time.
    Tick(Instant),
}

/// How a replacement child starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restart {
    /// Iterations completed in the checkpoint it starts from.
    pub(crate) completed_runs: u64,
    pub(crate) lives_left: u32,
    /// When set, the child only runs the `error` hook for this failure.
    pub(crate) pending: Option<Failure>,
}

/// How the process ended, for `result()`.
#[derive(Debug)]
pub(crate) enum Outcome {
    Finished,
    Failed(Failure),
    Error(Error),
    Killed,
}

/// What the driver must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Start a replacement child from the last checkpoint.
    Restart(Restart),
    /// Kill the current child now (its hook overran and its watchdog did not end it).
    KillChild,
    /// The process is over: hand this to `result()`.
    Deliver(Outcome),
}

/// A hook with a time limit that the child said it is running.
#[derive(Debug, Clone)]
struct LimitedHook {
    hook: Hook,
    limit: Duration,
    run: u64,
    started: Instant,
}

impl LimitedHook {
    /// When the hook's limit ran out; `None` when that is beyond what a clock can express.
    fn expiry(&self) -> Option<Instant> {
        self.started.checked_add(self.limit)
    }

    fn failure(&self) -> Failure {
        Failure::Timeout {
            hook: self.hook,
            limit: self.limit,
            run: self.run,
        }
    }
}

/// What the supervisor knows about the current child.
#[derive(Debug, Default)]
struct Attempt {
    finishing: bool,
    limited: Option<LimitedHook>,
    timed_out: Option<Failure>,
    backstop_fired: bool,
    /// This child only runs the `error` hook for this failure.
    handling_error: Option<Failure>,
}

/// The supervisor of one process.
#[derive(Debug)]
pub(crate) struct Supervisor {
    lives_left: u32,
    completed_runs: u64,
    checkpoint_runs: u64,
    has_error_hook: bool,
    restarts: u32,
    attempt: Attempt,
    over: bool,
}

impl Supervisor {
    /// Supervises a process started with `lives` lives.
    pub(crate) fn new(lives: u32, has_error_hook: bool) -> Self {
        Self {
            lives_left: lives,
            completed_runs: 0,
            checkpoint_runs: 0,
            has_error_hook,
            restarts: 0,
            attempt: Attempt::default(),
            over: false,
        }
    }

    /// Whether an outcome was delivered; nothing happens after that.
    pub(crate) fn is_over(&self) -> bool {
        self.over
    }

    /// Lives left as far as the supervisor knows: the child's count, less a life for each
    /// crash or timeout (0 once a final one spent the last).
    pub(crate) fn lives_left(&self) -> u32 {
        self.lives_left
    }

    /// Restarts after crashes and timeouts so far.
    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }

    /// When the driver must wake up even if nothing arrives: the backstop of a running hook.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.over || self.attempt.backstop_fired {
            return None;
        }
        let limited = self.attempt.limited.as_ref()?;
        limited.expiry()?.checked_add(BACKSTOP_GRACE)
    }

    /// Takes one event and says what to do.
    pub(crate) fn handle(&mut self, event: Event) -> Option<Action> {
        if self.over {
            return None;
        }
        match event {
            Event::Report(report) => self.on_report(report),
            Event::Ended { exit, at } => Some(self.on_ended(&exit, at)),
            Event::SpawnFailed(error) => Some(self.deliver(Outcome::Error(error))),
            Event::KillRequested => Some(self.deliver(Outcome::Killed)),
            Event::Tick(now) => self.on_tick(now),
        }
    }

    fn on_report(&mut self, report: Report) -> Option<Action> {
        let attempt = &mut self.attempt;
        match report {
            Report::Progress {
                completed_runs,
                lives_left,
            } => {
                self.completed_runs = completed_runs;
                self.lives_left = lives_left;
            }
            Report::Checkpoint { completed_runs } => {
                self.completed_runs = completed_runs;
                self.checkpoint_runs = completed_runs;
            }
            Report::HookStarted {
                hook,
                limit,
                run,
                started,
            } => {
                attempt.limited = Some(LimitedHook {
                    hook,
                    limit,
                    run,
                    started,
                });
            }
            Report::HookEnded => attempt.limited = None,
            Report::TimedOut { hook, limit, run } => {
                attempt.timed_out = Some(Failure::Timeout { hook, limit, run });
            }
            Report::Finishing => attempt.finishing = true,
            Report::HandlingError(failure) => {
                attempt.finishing = true;
                attempt.handling_error = Some(failure);
            }
            Report::Finished => return Some(self.deliver(Outcome::Finished)),
            Report::Failed(failure) => return Some(self.deliver(Outcome::Failed(failure))),
            Report::SetupFailed(error) => return Some(self.deliver(Outcome::Error(error))),
        }
        None
    }

    /// The backstop: a hook that overran by more than the grace is ended by the parent.
    fn on_tick(&mut self, now: Instant) -> Option<Action> {
        let due = self.next_deadline().is_some_and(|deadline| now >= deadline);
        if !due {
            return None;
        }
        let attempt = &mut self.attempt;
        attempt.backstop_fired = true;
        let failure = attempt.limited.as_ref().map(LimitedHook::failure);
        if attempt.timed_out.is_none() {
            attempt.timed_out = failure;
        }
        Some(Action::KillChild)
    }

    /// The child is gone without a terminal report: retry, hand over to `error`, or give up.
    fn on_ended(&mut self, exit: &Exit, at: Instant) -> Action {
        let failure = self.failure_of_end(exit, at);
        let attempt = std::mem::take(&mut self.attempt);
        if let Some(original) = attempt.handling_error {
            // The `error` hook itself died: the failure it was handling stands.
            return self.deliver(Outcome::Failed(original));
        }
        if failure.is_retryable() && !attempt.finishing {
            // The failure spends a life whether or not one is left to retry with, as an
            // `Err` does in the child: a final one leaves 0.
            self.lives_left = self.lives_left.saturating_sub(1);
            if self.lives_left > 0 {
                self.restarts += 1;
                return self.restart(None);
            }
        }
        if self.has_error_hook && !failure.is_in(Hook::Error) {
            self.attempt.handling_error = Some(failure.clone());
            return self.restart(Some(failure));
        }
        self.deliver(Outcome::Failed(failure))
    }

    /// A hook that was past its limit when the child ended timed out, whoever ended it and
    /// whether or not the watchdog's report arrived; anything else is a crash.
    fn failure_of_end(&self, exit: &Exit, at: Instant) -> Failure {
        if let Some(reported) = &self.attempt.timed_out {
            return reported.clone();
        }
        let overran = self
            .attempt
            .limited
            .as_ref()
            .filter(|limited| limited.expiry().is_some_and(|expiry| at >= expiry));
        if let Some(limited) = overran {
            return limited.failure();
        }
        Failure::Crashed {
            status: exit.describe(),
            run: self.completed_runs,
        }
    }

    fn restart(&mut self, pending: Option<Failure>) -> Action {
        self.completed_runs = self.checkpoint_runs;
        Action::Restart(Restart {
            completed_runs: self.checkpoint_runs,
            lives_left: self.lives_left,
            pending,
        })
    }

    fn deliver(&mut self, outcome: Outcome) -> Action {
        self.over = true;
        Action::Deliver(outcome)
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
