//! The lifecycle engine: runs a process's hooks in order, with retries, timers, checkpoints
//! and deadlines, and reports the outcome to the parent.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::bootstrap::Started;
use crate::child::hook_context::Ctx;
use crate::child::hooks::Hooks;
use crate::child::link::ChildLink;
use crate::child::pool_item::{ItemHost, ItemLives};
use crate::child::watchdog::{Overrun, Watchdog};
use crate::error::{Error, Failure, FailureKind, FailureReport};
use crate::hook::{Hook, HookFailure};
use crate::panics::{self, PanicReport};
use crate::protocol::bootstrap::{EXIT_PARENT_GONE, EXIT_SETUP_FAILED};
use crate::protocol::lifecycle::{Resume, ToParent};
use crate::protocol::{START_OVERHEAD, fit_message};
use crate::timing::{ProcessTimers, Slot, monotonic_nanos};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};

/// Room a terminal message needs beside the output itself.
const TERMINAL_OVERHEAD: usize = 64;

/// Pause after a failed reopen, times the attempt, so a server that is restarting gets time.
const REOPEN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest pause between reopen attempts.
const MAX_REOPEN_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// How a child's run ended, for its exit code.
pub(crate) enum Ended {
    /// The terminal report reached the connection.
    Reported,
    /// The terminal report could not be sent: the parent is gone.
    ParentGone,
    /// The state could not be rebuilt.
    SetupFailed,
}

/// Runs the lifecycle role with `run_child`, the engine of the registered type the start
/// named (`None`: this binary has no such type).
pub(crate) fn run_lifecycle(
    connection: Connection,
    reader: FrameReader,
    started: Started,
    run_child: Option<fn(ChildLink, Started) -> Ended>,
) -> i32 {
    let Some(run_child) = run_child else {
        let _ = connection.send(&ToParent::UnknownType(started.key));
        return EXIT_SETUP_FAILED;
    };
    let link = match ChildLink::start(connection, reader, &started) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("skprocess: child setup failed: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    match run_child(link, started) {
        Ended::Reported => 0,
        Ended::ParentGone => EXIT_PARENT_GONE,
        Ended::SetupFailed => EXIT_SETUP_FAILED,
    }
}

/// Rebuilds `P` from the start message, runs its lifecycle (or only its `error` hook when the
/// parent hands over a failure) and reports the outcome.
pub(crate) fn run_child<P: Hooks>(link: ChildLink, started: Started) -> Ended {
    let mut process: P = match frame::decode_owned(&started.state) {
        Ok(process) => process,
        Err(e) => {
            let detail = format!("cannot rebuild the state of `{}`: {e}", P::KEY);
            let _ = link.send(&ToParent::SetupFailed(detail));
            return Ended::SetupFailed;
        }
    };
    let pending = started.resume.pending.clone();
    let mut engine = Engine {
        ctx: Ctx::<P>::new(link, started.config, &started.resume, started.timers),
        watchdog: None,
        item: None,
    };
    let outcome = match pending {
        Some(failure) => {
            // Only the `error` hook runs: it gets the resources if they open, and the failure
            // it handles stands either way (a closed `Live` says so when used).
            let _ = process.reopen_live();
            Err(failure)
        }
        None => engine
            .reopen_live(&mut process)
            .and_then(|()| engine.run_lifecycle(&mut process)),
    };
    let reported = match engine.conclude(&mut process, outcome) {
        Ok(output) => engine.report_output(&output),
        Err(failure) => engine.report_failure(failure),
    };
    match reported {
        Ok(()) => Ended::Reported,
        Err(_) => Ended::ParentGone,
    }
}

/// Runs the whole lifecycle of the `P` encoded in `state` in this process, without a parent
/// (a pool item): runs, lives and the `error` hook as in a child, with `P`'s default
/// configuration, starting with the lives the item has not `spent` on earlier attempts.
/// Returns the encoded output or the final failure; lives spent and overruns go to `host`.
pub(crate) fn run_in_pool<P: Hooks>(
    state: &[u8],
    spent: u32,
    host: Arc<dyn ItemHost>,
) -> Result<Vec<u8>, Failure> {
    let mut process: P = frame::decode_owned(state).map_err(|e| {
        Failure::Hook(FailureReport {
            hook: Hook::Prerun,
            run: 0,
            kind: FailureKind::Returned,
            message: fit_message(format!("cannot rebuild the state of `{}`: {e}", P::KEY)),
            location: None,
            backtrace: None,
        })
    })?;
    let config = P::default_config();
    let lives = ItemLives::new(host, config.lives, spent);
    let resume = Resume {
        lives_left: lives.left(),
        ..Resume::default()
    };
    let link = ChildLink::detached(Arc::new(lives.clone()));
    let mut engine = Engine {
        ctx: Ctx::<P>::new(link, config, &resume, ProcessTimers::default()),
        watchdog: None,
        item: Some(lives),
    };
    // A pool item reopens its live resources like a child does, before its first hook.
    let outcome = engine
        .reopen_live(&mut process)
        .and_then(|()| engine.run_lifecycle(&mut process));
    engine.conclude(&mut process, outcome)
}

/// Runs hooks in order, with retries, timers, checkpoints and deadlines.
struct Engine<P: Hooks> {
    ctx: Ctx<P>,
    /// Started the first time a hook with a limit runs.
    watchdog: Option<Watchdog>,
    /// A pool item's lives, told to its worker as they are spent (a child tells its parent
    /// through progress reports instead).
    item: Option<ItemLives>,
}

impl<P: Hooks> Engine<P> {
    /// Iterations until stopped, out of runs or out of time, then onfinish and result.
    fn run_lifecycle(&mut self, process: &mut P) -> Result<Vec<u8>, Failure> {
        while self.ctx.should_continue() {
            match self.run_iteration(process) {
                Ok(true) => self.checkpoint(process)?,
                Ok(false) => break,
                Err(failure) => self.spend_life(failure)?,
            }
        }
        let _ = self.ctx.send_control(&ToParent::Finishing);
        if let Some(item) = &self.item {
            item.finishing();
        }
        self.guarded(Hook::Onfinish, None, |ctx| {
            process.call_hook(ctx, Hook::Onfinish)
        })?;
        let output = self.guarded(Hook::Result, None, |ctx| process.result(ctx))?;
        frame::encode(&output)
            .map_err(|e| self.failure(Hook::Result, format!("cannot serialize the output: {e}")))
    }

    /// Reopens live resources before the first hook. A failure costs a life and is tried again
    /// after a short pause while lives remain; then it is the start's failure.
    fn reopen_live(&mut self, process: &mut P) -> Result<(), Failure> {
        let mut attempt: u32 = 0;
        loop {
            let Err(error) = process.reopen_live() else {
                return Ok(());
            };
            let failure = Failure::Reopen {
                run: self.ctx.current_run(),
                message: fit_message(error.to_string()),
            };
            self.spend_life(failure)?;
            attempt = attempt.saturating_add(1);
            std::thread::sleep(
                REOPEN_BACKOFF
                    .saturating_mul(attempt)
                    .min(MAX_REOPEN_BACKOFF),
            );
        }
    }

    /// Runs one iteration; `Ok(false)` when a stop cut it short.
    fn run_iteration(&mut self, process: &mut P) -> Result<bool, Failure> {
        // The clock reading that ends a hook starts the next: only a look at the stop flag
        // runs between them. An iteration reads the clock 4 times, not 7.
        let mut now = monotonic_nanos();
        let mut full_run = Duration::ZERO;
        for hook in [Hook::Prerun, Hook::Run, Hook::Postrun] {
            let ((), took, ended) =
                self.timed(hook, None, now, |ctx| process.call_hook(ctx, hook))?;
            full_run = full_run.saturating_add(took);
            now = ended;
            if hook != Hook::Postrun && self.ctx.stop_requested() {
                return Ok(false);
            }
        }
        let progress = self.ctx.finish_iteration(full_run, now);
        progress.map_err(|e| self.failure(Hook::Postrun, e.to_string()))?;
        Ok(true)
    }

    /// Retries while lives remain; otherwise the failure is final.
    fn spend_life(&mut self, failure: Failure) -> Result<(), Failure> {
        if !failure.is_retryable() || !self.ctx.spend_life() {
            return Err(failure);
        }
        if let Some(item) = &self.item {
            item.spent(self.ctx.lives_left());
        }
        let _ = self.ctx.report_progress();
        Ok(())
    }

    /// Sends the state after a completed iteration when a crash could need it. A state too
    /// large to restart from is a failure now rather than a restart that cannot happen later.
    fn checkpoint(&mut self, process: &P) -> Result<(), Failure> {
        if !self.ctx.config().needs_checkpoints() {
            return Ok(());
        }
        let state = frame::encode(process).map_err(|e| {
            self.failure(Hook::Postrun, format!("cannot checkpoint the state: {e}"))
        })?;
        let limit = (self.ctx.config().max_frame_bytes as usize).saturating_sub(START_OVERHEAD);
        if state.len() > limit {
            return Err(Failure::TooLarge {
                size: state.len() as u64,
                limit: limit as u64,
            });
        }
        // Timer samples go with it, so a restart from this checkpoint keeps them.
        let sent = self.ctx.send_checkpoint(&state);
        sent.map_err(|e| self.failure(Hook::Postrun, e.to_string()))
    }

    /// The final outcome: the output, or the failure after the `error` hook had its chance
    /// to turn it into an output.
    fn conclude(
        &mut self,
        process: &mut P,
        outcome: Result<Vec<u8>, Failure>,
    ) -> Result<Vec<u8>, Failure> {
        let failure = match outcome {
            Ok(output) => return Ok(output),
            Err(failure) if P::HAS_ERROR_HOOK => failure,
            Err(failure) => return Err(failure),
        };
        let error = Error::from(failure.clone());
        let on_timeout = Overrun::Failed(failure.clone());
        // If this process dies in the hook, the parent delivers the failure it was handling.
        self.ctx
            .send_control(&ToParent::HandlingError(failure.clone()))
            .map_err(|_| failure.clone())?;
        let handled = self.guarded(Hook::Error, Some(on_timeout), |ctx| {
            process.error(ctx, &error)
        });
        match handled.map(|output| frame::encode(&output)) {
            Ok(Ok(output)) => Ok(output),
            _ => Err(failure),
        }
    }

    /// Sends the output, or a failure when it cannot fit in a frame.
    fn report_output(&mut self, output: &[u8]) -> Result<(), Error> {
        let limit = (self.ctx.config().max_frame_bytes as usize).saturating_sub(TERMINAL_OVERHEAD);
        if output.len() > limit {
            return self.report_failure(Failure::TooLarge {
                size: output.len() as u64,
                limit: limit as u64,
            });
        }
        self.ctx.report_progress()?;
        self.ctx.send_control(&ToParent::Finished {
            output,
            completed_runs: self.ctx.current_run(),
        })
    }

    fn report_failure(&mut self, failure: Failure) -> Result<(), Error> {
        self.ctx.report_progress()?;
        self.ctx.send_control(&ToParent::Failed(failure))
    }

    fn failure(&self, hook: Hook, message: String) -> Failure {
        Failure::Hook(FailureReport {
            hook,
            run: self.ctx.current_run(),
            kind: FailureKind::Returned,
            message: fit_message(message),
            location: None,
            backtrace: None,
        })
    }

    fn panicked(&self, hook: Hook, panic: PanicReport) -> Failure {
        Failure::Hook(FailureReport {
            hook,
            run: self.ctx.current_run(),
            kind: FailureKind::Panicked,
            message: panic.message,
            location: panic.location,
            backtrace: panic.backtrace,
        })
    }

    /// Arms the watchdog for `hook` when it has a limit the clock can express, and tells the
    /// parent, which keeps the same deadline. Returns whether it armed.
    fn arm(&mut self, hook: Hook, on_timeout: Option<Overrun>) -> bool {
        let Some(limit) = *self.ctx.config().timeouts.get(hook) else {
            return false;
        };
        let started_nanos = monotonic_nanos();
        let Some(deadline) = Instant::now().checked_add(limit) else {
            return false;
        };
        if self.watchdog.is_none() {
            match Watchdog::start(Arc::clone(&self.ctx.link().overrun)) {
                Ok(watchdog) => self.watchdog = Some(watchdog),
                // Without a thread to watch, the parent's backstop still ends an overrun.
                Err(_) => return false,
            }
        }
        let run = self.ctx.current_run();
        let report = on_timeout.unwrap_or(Overrun::TimedOut { hook, limit, run });
        let started = ToParent::HookStarted {
            hook,
            limit,
            run,
            started_nanos,
        };
        let _ = self.ctx.send_control(&started);
        if let Some(watchdog) = &self.watchdog {
            watchdog.arm(deadline, report);
        }
        true
    }

    fn disarm(&mut self) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.disarm();
        }
        let _ = self.ctx.send_control(&ToParent::HookEnded);
    }

    /// Calls a hook under its deadline, timing it and turning an error or a panic into a
    /// failure. `on_timeout` replaces the default `TimedOut` report.
    fn guarded<T>(
        &mut self,
        hook: Hook,
        on_timeout: Option<Overrun>,
        call: impl FnOnce(&mut Ctx<P>) -> Result<T, HookFailure>,
    ) -> Result<T, Failure> {
        let (value, _, _) = self.timed(hook, on_timeout, monotonic_nanos(), call)?;
        Ok(value)
    }

    /// [`guarded`](Engine::guarded), timed from `now`, a reading of [`monotonic_nanos`]
    /// taken just before; also returns how long the hook took and a reading taken once it
    /// was over.
    fn timed<T>(
        &mut self,
        hook: Hook,
        on_timeout: Option<Overrun>,
        now: u64,
        call: impl FnOnce(&mut Ctx<P>) -> Result<T, HookFailure>,
    ) -> Result<(T, Duration, u64), Failure> {
        let armed = self.arm(hook, on_timeout);
        // Arming told the parent: the hook starts after that.
        let started = if armed { monotonic_nanos() } else { now };
        let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut self.ctx)));
        let ended = monotonic_nanos();
        let elapsed = Duration::from_nanos(ended.saturating_sub(started));
        // Disarming told the parent too: whatever comes next starts after that.
        let next = if armed {
            self.disarm();
            monotonic_nanos()
        } else {
            ended
        };
        self.ctx.usage.busy = self.ctx.usage.busy.saturating_add(elapsed);
        if outcome.as_ref().is_ok_and(Result::is_ok) || !hook.is_iteration_hook() {
            self.ctx.record(Slot::Hook(hook), elapsed);
        }
        match outcome {
            Ok(Ok(value)) => Ok((value, elapsed, next)),
            Ok(Err(failure)) => Err(self.failure(hook, failure.message)),
            Err(payload) => Err(self.panicked(hook, panics::caught(&*payload))),
        }
    }
}
