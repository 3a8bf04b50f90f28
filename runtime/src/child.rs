//! The child side: bootstrap from the environment, the reader thread, and the engine.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::context::{ChildLink, Ctx};
use crate::error::{Error, FailureKind, FailureReport, Hook};
use crate::process::{Process, call_hook};
use crate::registry;
use crate::transport;
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
    let token = std::env::var(ENV_TOKEN).map_err(|_| Error::Config("missing child token".into()))?;
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
        Some(ToChild::Start(start)) => start,
        _ => return Err(wire::WireError::Malformed("expected a start message".into()).into()),
    };
    let link = ChildLink {
        stream,
        inbox: Arc::default(),
        stop: Arc::default(),
        max_frame,
    };
    spawn_reader(&link, reader)?;
    Ok((link, start))
}

/// Reads the parent's messages in the background; exits the process when the parent is gone,
/// so a child never outlives its parent.
fn spawn_reader(link: &ChildLink, mut reader: FrameReader) -> Result<(), Error> {
    let stream = Arc::clone(&link.stream);
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
            let _ = link.send(&ToParent::UnknownType(start.key));
            EXIT_SETUP_FAILED
        }
    }
}

/// Rebuilds `P` from the start payload, runs its lifecycle and reports the outcome.
pub(crate) fn run_child<P: Process>(link: ChildLink, start: StartPayload) -> i32 {
    let mut process: P = match wire::decode(&start.state) {
        Ok(process) => process,
        Err(e) => {
            let _ = link.send(&ToParent::SetupFailed(format!("cannot rebuild state: {e}")));
            return EXIT_SETUP_FAILED;
        }
    };
    let mut ctx = Ctx::<P>::new(link, start.config);
    let terminal = match run_lifecycle(&mut process, &mut ctx) {
        Ok(output) => ToParent::Finished {
            output,
            completed_runs: ctx.current_run(),
        },
        Err(report) => ToParent::Failed(report),
    };
    match ctx.link().send(&terminal) {
        Ok(()) => EXIT_DONE,
        Err(_) => EXIT_PARENT_GONE,
    }
}

/// The engine: iterations of prerun, run, postrun until stopped or out of runs, then
/// onfinish and result. Returns the encoded output.
fn run_lifecycle<P: Process>(process: &mut P, ctx: &mut Ctx<P>) -> Result<Vec<u8>, FailureReport> {
    while !ctx.stop_requested() && !ctx.runs_done() {
        if !run_iteration(process, ctx)? {
            break;
        }
    }
    guarded(ctx, Hook::Onfinish, |ctx| call_hook(process, ctx, Hook::Onfinish))?;
    let output = guarded(ctx, Hook::Result, |ctx| process.result(ctx))?;
    wire::encode(&output).map_err(|e| FailureReport {
        hook: Hook::Result,
        run: ctx.current_run(),
        kind: FailureKind::Returned,
        message: format!("cannot serialize the output: {e}"),
    })
}

/// Runs one iteration; `Ok(false)` when a stop cut it short.
fn run_iteration<P: Process>(process: &mut P, ctx: &mut Ctx<P>) -> Result<bool, FailureReport> {
    for hook in [Hook::Prerun, Hook::Run] {
        guarded(ctx, hook, |ctx| call_hook(process, ctx, hook))?;
        if ctx.stop_requested() {
            return Ok(false);
        }
    }
    guarded(ctx, Hook::Postrun, |ctx| call_hook(process, ctx, Hook::Postrun))?;
    ctx.finish_iteration().map_err(|e| FailureReport {
        hook: Hook::Postrun,
        run: ctx.current_run(),
        kind: FailureKind::Returned,
        message: e.to_string(),
    })?;
    Ok(true)
}

/// Calls a hook, turning an error return or a panic into a report.
fn guarded<P: Process, T>(
    ctx: &mut Ctx<P>,
    hook: Hook,
    call: impl FnOnce(&mut Ctx<P>) -> Result<T, crate::process::HookFailure>,
) -> Result<T, FailureReport> {
    let run = ctx.current_run();
    let report = |kind, message| FailureReport {
        hook,
        run,
        kind,
        message,
    };
    match catch_unwind(AssertUnwindSafe(|| call(ctx))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err(report(FailureKind::Returned, failure.message)),
        Err(payload) => Err(report(FailureKind::Panicked, panic_message(&*payload))),
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
