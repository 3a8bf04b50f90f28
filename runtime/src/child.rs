//! The child side: bootstrap from the environment, the reader thread, and the engine.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use interprocess::local_socket::Stream;

use crate::context::{ChildLink, Ctx, Writer};
use crate::error::{Error, Failure, FailureKind, FailureReport, Hook};
use crate::process::{HookFailure, Process, call_hook};
use crate::registry;
use crate::timing::Slot;
use crate::transport;
use crate::watchdog::Watchdog;
use crate::wire::{self, FrameReader, StartPayload, ToChild, ToParent};

/// Environment variable carrying the rendezvous address; its presence marks a child.
pub(crate) const ENV_ADDRESS: &str = "SKPROCESS_CHILD_ADDRESS";
/// Environment variable carrying the token the child must prove.
pub(crate) const ENV_TOKEN: &str = "SKPROCESS_CHILD_TOKEN";
/// Environment variable carrying the largest frame the child may accept.
pub(crate) const ENV_MAX_FRAME: &str = "SKPROCESS_CHILD_MAX_FRAME";

/// Exit code of a child that finished its lifecycle.
const EXIT_DONE: i32 = 0;
/// Exit code of a child whose parent vanished.
const EXIT_PARENT_GONE: i32 = 70;
/// Exit code of a child that could not set up (bad environment, protocol error).
const EXIT_SETUP_FAILED: i32 = 71;
/// Exit code of a child that reached user code without the entry hook.
pub(crate) const EXIT_NO_ENTRY_HOOK: i32 = 97;

/// Room a terminal message needs beside the output itself (variant tag, lengths, timers).
const FRAME_OVERHEAD: usize = 4096;

/// Set once [`init`] has taken this process down the child path.
static ENTERED_AS_CHILD: AtomicBool = AtomicBool::new(false);

/// The entry hook: in a child, runs the process it was started for and exits; in any other
/// process, returns at once.
///
/// Call it first thing in `main` (which `#[skprocess::main]` does for you). Test binaries use
/// `skprocess::test_support!()` instead, which calls it before the test harness starts.
pub fn init() {
    let Some(address) = std::env::var_os(ENV_ADDRESS) else {
        return;
    };
    ENTERED_AS_CHILD.store(true, Ordering::SeqCst);
    let code = match address.into_string() {
        Ok(address) => child_main(&address),
        Err(_) => EXIT_SETUP_FAILED,
    };
    std::process::exit(code);
}

/// Stops a child that reached user code without [`init`] before it can spawn again.
pub(crate) fn forbid_unhooked_child() {
    if std::env::var_os(ENV_ADDRESS).is_some() && !ENTERED_AS_CHILD.load(Ordering::SeqCst) {
        eprintln!(
            "skprocess: this child process reached user code without the entry hook and will not \
             spawn again; start `main` with `skprocess::init()` or mark it `#[skprocess::main]` \
             (in test binaries, add `skprocess::test_support!();`)"
        );
        std::process::exit(EXIT_NO_ENTRY_HOOK);
    }
}

fn child_main(address: &str) -> i32 {
    match connect_and_start(address) {
        Ok((link, start)) => run_registered(link, start),
        Err(e) => {
            eprintln!("skprocess: child setup failed: {e}");
            EXIT_SETUP_FAILED
        }
    }
}

fn connect_and_start(address: &str) -> Result<(ChildLink, StartPayload), Error> {
    let token =
        std::env::var(ENV_TOKEN).map_err(|_| Error::Config("missing child token".into()))?;
    let max_frame = std::env::var(ENV_MAX_FRAME)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Config("missing child frame limit".into()))?;
    let stream = Arc::new(transport::connect(address)?);
    let hello = ToParent::Hello {
        token,
        pid: std::process::id(),
    };
    wire::write_message(&*stream, &hello, max_frame)?;
    let mut reader = FrameReader::new(max_frame);
    let start = match reader.read_message(&mut &*stream)? {
        Some(ToChild::Start(start)) => *start,
        _ => return Err(wire::WireError::Malformed("expected a start message".into()).into()),
    };
    let link = ChildLink {
        writer: Arc::new(Writer::new(Arc::clone(&stream), max_frame)),
        inbox: Arc::default(),
        stop: Arc::default(),
    };
    spawn_reader(&link, stream, reader)?;
    Ok((link, start))
}

/// Reads the parent's messages in the background; exits the process when the parent is gone,
/// so a child never outlives its parent.
fn spawn_reader(
    link: &ChildLink,
    stream: Arc<Stream>,
    mut reader: FrameReader,
) -> Result<(), Error> {
    let inbox = Arc::clone(&link.inbox);
    let stop = Arc::clone(&link.stop);
    thread::Builder::new()
        .name("skprocess-reader".into())
        .spawn(move || {
            loop {
                match reader.read_message(&mut &*stream) {
                    Ok(Some(ToChild::Tell(bytes))) => inbox.push(bytes),
                    Ok(Some(ToChild::Stop)) => stop.store(true, Ordering::SeqCst),
                    Ok(Some(ToChild::Start(_))) => {}
                    Ok(None) | Err(_) => std::process::exit(EXIT_PARENT_GONE),
                }
            }
        })?;
    Ok(())
}

fn run_registered(link: ChildLink, start: StartPayload) -> i32 {
    match registry::find(&start.key) {
        Some(entry) => (entry.run_child)(link, start),
        None => {
            let _ = link.writer.send(&ToParent::UnknownType(start.key));
            EXIT_SETUP_FAILED
        }
    }
}

/// Rebuilds `P` from the start payload, runs its lifecycle (or only its `error` hook when the
/// parent hands over a failure) and reports the outcome.
pub(crate) fn run_child<P: Process>(link: ChildLink, start: StartPayload) -> i32 {
    let mut process: P = match wire::decode(&start.state) {
        Ok(process) => process,
        Err(e) => {
            let _ = link
                .writer
                .send(&ToParent::SetupFailed(format!("cannot rebuild state: {e}")));
            return EXIT_SETUP_FAILED;
        }
    };
    let watchdog = match Watchdog::start(Arc::clone(&link.writer)) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            let _ = link.writer.send(&ToParent::SetupFailed(format!(
                "cannot start watchdog: {e}"
            )));
            return EXIT_SETUP_FAILED;
        }
    };
    let mut engine = Engine {
        ctx: Ctx::<P>::new(link, start.config, &start.resume),
        watchdog,
    };
    let outcome = match start.resume.pending {
        Some(failure) => Err(failure),
        None => engine.run_lifecycle(&mut process),
    };
    let terminal = match outcome {
        Ok(output) => engine.finished(output),
        Err(failure) => engine.handle_failure(&mut process, failure),
    };
    match engine.ctx.send(&terminal) {
        Ok(()) => EXIT_DONE,
        Err(_) => EXIT_PARENT_GONE,
    }
}

/// Runs hooks in order, with retries, timers, checkpoints and deadlines.
struct Engine<P: Process> {
    ctx: Ctx<P>,
    watchdog: Watchdog,
}

impl<P: Process> Engine<P> {
    /// Iterations until stopped, out of runs or out of time, then onfinish and result.
    fn run_lifecycle(&mut self, process: &mut P) -> Result<Vec<u8>, Failure> {
        while self.ctx.should_continue() {
            match self.run_iteration(process) {
                Ok(true) => self.checkpoint(process)?,
                Ok(false) => break,
                Err(failure) => self.spend_life(failure)?,
            }
        }
        let _ = self.ctx.send(&ToParent::Finishing);
        self.guarded(Hook::Onfinish, None, |ctx| {
            call_hook(process, ctx, Hook::Onfinish)
        })?;
        let output = self.guarded(Hook::Result, None, |ctx| process.result(ctx))?;
        wire::encode(&output).map_err(|e| {
            self.failure(
                Hook::Result,
                FailureKind::Returned,
                format!("cannot serialize the output: {e}"),
            )
        })
    }

    /// Runs one iteration; `Ok(false)` when a stop cut it short.
    fn run_iteration(&mut self, process: &mut P) -> Result<bool, Failure> {
        for hook in [Hook::Prerun, Hook::Run] {
            self.guarded(hook, None, |ctx| call_hook(process, ctx, hook))?;
            if self.ctx.stop_requested() {
                return Ok(false);
            }
        }
        self.guarded(Hook::Postrun, None, |ctx| {
            call_hook(process, ctx, Hook::Postrun)
        })?;
        let progress = self.ctx.finish_iteration();
        progress.map_err(|e| self.failure(Hook::Postrun, FailureKind::Returned, e.to_string()))?;
        Ok(true)
    }

    /// Retries while lives remain; otherwise the failure is final.
    fn spend_life(&mut self, failure: Failure) -> Result<(), Failure> {
        if !failure.is_retryable() || !self.ctx.spend_life() {
            return Err(failure);
        }
        let _ = self.ctx.report_progress();
        Ok(())
    }

    /// Sends the state after a completed iteration when a crash could need it.
    fn checkpoint(&mut self, process: &P) -> Result<(), Failure> {
        if !self.ctx.config().needs_checkpoints() {
            return Ok(());
        }
        let state = wire::encode(process).map_err(|e| {
            self.failure(
                Hook::Postrun,
                FailureKind::Returned,
                format!("cannot checkpoint the state: {e}"),
            )
        })?;
        let checkpoint = ToParent::Checkpoint {
            state,
            completed_runs: self.ctx.current_run(),
            new_samples: self.ctx.take_unsent_samples(),
        };
        self.ctx
            .send(&checkpoint)
            .map_err(|e| self.failure(Hook::Postrun, FailureKind::Returned, e.to_string()))
    }

    /// Gives the final failure to the `error` hook, which may turn it into an output.
    fn handle_failure(&mut self, process: &mut P, failure: Failure) -> ToParent {
        if !P::HAS_ERROR_HOOK {
            return self.failed(failure);
        }
        let error = Error::from(failure.clone());
        let on_timeout = self.failed(failure.clone());
        let handled = self.guarded(Hook::Error, Some(on_timeout), |ctx| {
            process.error(ctx, &error)
        });
        match handled.map(|output| wire::encode(&output)) {
            Ok(Ok(output)) => self.finished(output),
            _ => self.failed(failure),
        }
    }

    fn finished(&self, output: Vec<u8>) -> ToParent {
        let limit = self.ctx.config().max_frame_bytes as usize;
        if output.len() + FRAME_OVERHEAD > limit {
            let message = format!(
                "the output is {} bytes, over the frame limit of {limit} bytes (`Config::max_frame_bytes`)",
                output.len()
            );
            return self.failed(self.failure(Hook::Result, FailureKind::Returned, message));
        }
        ToParent::Finished {
            output,
            completed_runs: self.ctx.current_run(),
            timers: self.ctx.timers().clone(),
        }
    }

    fn failed(&self, failure: Failure) -> ToParent {
        ToParent::Failed {
            failure,
            timers: self.ctx.timers().clone(),
        }
    }

    fn failure(&self, hook: Hook, kind: FailureKind, message: String) -> Failure {
        Failure::Hook(FailureReport {
            hook,
            run: self.ctx.current_run(),
            kind,
            message,
        })
    }

    /// Calls a hook under its deadline, timing it and turning an error or a panic into a
    /// failure. `on_timeout` replaces the default `TimedOut` report.
    fn guarded<T>(
        &mut self,
        hook: Hook,
        on_timeout: Option<ToParent>,
        call: impl FnOnce(&mut Ctx<P>) -> Result<T, HookFailure>,
    ) -> Result<T, Failure> {
        let limit = *self.ctx.config().timeouts.get(hook);
        if let Some(limit) = limit {
            let run = self.ctx.current_run();
            let report = on_timeout.unwrap_or(ToParent::TimedOut { hook, limit, run });
            self.watchdog.arm(limit, report);
            // The parent keeps its own deadline too, in case this process cannot act at all.
            let _ = self.ctx.send(&ToParent::HookStarted { hook, limit, run });
        }
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut self.ctx)));
        let elapsed = started.elapsed();
        if limit.is_some() {
            self.watchdog.disarm();
            let _ = self.ctx.send(&ToParent::HookEnded);
        }
        self.ctx.usage.busy += elapsed;
        if outcome.as_ref().is_ok_and(Result::is_ok) || !hook.is_iteration_hook() {
            self.ctx.record(Slot::Hook(hook), elapsed);
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(self.failure(hook, FailureKind::Returned, failure.message)),
            Err(payload) => {
                Err(self.failure(hook, FailureKind::Panicked, panic_message(&*payload)))
            }
        }
    }
}

/// The text of a panic payload, as the default hook would print it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
