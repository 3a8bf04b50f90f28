//! Lives, restarts after real crashes, hook timeouts, join_in, the error hook, timers and
//! status, across real child processes (spec SCN-07…12).

use std::time::{Duration, Instant};

use skprocess::prelude::*;
use skprocess::{FailureKind, Hook};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize, Default)]
struct Budgeted {
    iterations: u64,
}

#[skprocess(runs = None, join_in = "20ms")]
impl Budgeted {
    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(1));
        self.iterations += 1;
    }

    fn result(&mut self) -> u64 {
        self.iterations
    }
}

#[test]
fn scn07_join_in_ends_an_endless_process() {
    let _bound = bound::within(TEST_BOUND);
    let iterations = Budgeted::default()
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert!(iterations > 0);
}

#[derive(Serialize, Deserialize, Default)]
struct FlakyOnce {
    run_calls: u32,
    log: Vec<String>,
}

#[skprocess(runs = 3, lives = 2)]
impl FlakyOnce {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(format!("start {}", ctx.current_run()));
    }

    fn run(&mut self) -> Result<(), String> {
        self.run_calls += 1;
        if self.run_calls == 2 {
            self.log.push("failure".into());
            return Err("second call fails".into());
        }
        Ok(())
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> (u32, u64, Vec<String>) {
        (
            self.run_calls,
            ctx.current_run(),
            std::mem::take(&mut self.log),
        )
    }
}

#[test]
fn scn08_a_retry_keeps_progress_and_repeats_only_the_failed_iteration() {
    let _bound = bound::within(TEST_BOUND);
    let (run_calls, current_run, log) = FlakyOnce::default()
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert_eq!((run_calls, current_run), (4, 3));
    let failure = log.iter().position(|l| l == "failure").unwrap();
    assert_eq!(log[failure + 1], "start 1");
    assert_eq!(log.last().unwrap(), "start 2");
}

#[derive(Serialize, Deserialize, Default)]
struct SlowRetry {
    attempts: u32,
}

#[skprocess(runs = 1, lives = 2)]
impl SlowRetry {
    fn run(&mut self) -> Result<(), String> {
        self.attempts += 1;
        std::thread::sleep(Duration::from_millis(200));
        if self.attempts == 1 {
            return Err("first attempt fails".into());
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    fn result(&mut self) -> u32 {
        self.attempts
    }
}

#[test]
fn scn09_wait_blocks_through_a_retry() {
    let _bound = bound::within(TEST_BOUND);
    let started = Instant::now();
    let handle = SlowRetry::default().start().unwrap();
    assert!(handle.wait(Duration::from_secs(10)));
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 2);
}

#[derive(Serialize, Deserialize)]
struct AlwaysFails;

#[skprocess]
impl AlwaysFails {
    fn run(&mut self) -> Result<(), String> {
        Err("test failure".into())
    }
}

#[test]
fn scn10a_exhausted_lives_deliver_the_run_error_with_its_run_index() {
    let _bound = bound::within(TEST_BOUND);
    let error = AlwaysFails
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert!(
        matches!(&error, Error::Hook { hook: Hook::Run, run: 0, kind: FailureKind::Returned, message, .. } if message == "test failure"),
        "{error:?}"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    status: String,
    calls: u32,
    error_was_run: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct Recovering {
    calls: u32,
}

#[skprocess(runs = 3, lives = 2)]
impl Recovering {
    fn run(&mut self) -> Result<(), String> {
        self.calls += 1;
        Err(format!("call {} failed", self.calls))
    }

    fn result(&mut self) -> Report {
        Report {
            status: "ok".into(),
            calls: self.calls,
            error_was_run: false,
        }
    }

    fn error(&mut self, error: &Error) -> Report {
        let error_was_run = matches!(
            error,
            Error::Hook {
                hook: Hook::Run,
                ..
            }
        );
        Report {
            status: "failed".into(),
            calls: self.calls,
            error_was_run,
        }
    }
}

#[test]
fn scn10b_the_error_hook_turns_the_final_error_into_the_output() {
    let _bound = bound::within(TEST_BOUND);
    let report = Recovering::default()
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert_eq!(
        report,
        Report {
            status: "failed".into(),
            calls: 2,
            error_was_run: true
        }
    );
}

#[derive(Serialize, Deserialize)]
struct BrokenErrorHook;

#[skprocess]
impl BrokenErrorHook {
    fn run(&mut self) -> Result<(), String> {
        Err("original failure".into())
    }

    fn error(&mut self, _error: &Error) {
        panic!("the error hook itself fails");
    }
}

#[test]
fn a_failing_error_hook_delivers_the_original_error() {
    let _bound = bound::within(TEST_BOUND);
    let error = BrokenErrorHook
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert!(
        matches!(&error, Error::Hook { hook: Hook::Run, message, .. } if message == "original failure"),
        "{error:?}"
    );
}

#[derive(Serialize, Deserialize)]
struct Sleepy {
    millis: u64,
}

#[skprocess(runs = 3, lives = 2, timeout(run = "1s"))]
impl Sleepy {
    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(self.millis));
    }
}

#[test]
fn scn11_a_hook_timeout_uses_lives_then_reports_hook_limit_and_run() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Sleepy { millis: 1500 }.start().unwrap();
    let error = handle.result_timeout(BOUND).unwrap_err();
    match error {
        Error::Timeout { hook, limit, run } => {
            assert_eq!((hook, limit, run), (Hook::Run, Duration::from_secs(1), 0));
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[test]
fn scn11_port_check_a_200ms_limit_cuts_a_700ms_hook() {
    let _bound = bound::within(TEST_BOUND);
    let config = Sleepy::default_config()
        .runs(1)
        .lives(1)
        .timeout(Hook::Run, Duration::from_millis(200));
    let error = Sleepy { millis: 700 }
        .start_with(config)
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert!(
        matches!(error, Error::Timeout { hook: Hook::Run, limit, run: 0 } if limit == Duration::from_millis(200)),
        "{error:?}"
    );
}

#[derive(Serialize, Deserialize)]
struct Endless;

#[skprocess(runs = None, lives = 5)]
impl Endless {
    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn scn12_kill_ignores_lives() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Endless.start().unwrap();
    handle.kill().unwrap();
    assert!(!handle.is_alive());
    assert!(matches!(handle.result_timeout(BOUND), Err(Error::Killed)));
}

#[derive(Serialize, Deserialize, Default)]
struct Recorder {
    seen: Vec<u64>,
}

#[skprocess(runs = 5, outbox = u64)]
impl Recorder {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        self.seen.push(ctx.current_run());
        std::thread::sleep(Duration::from_millis(30));
        ctx.tell(ctx.current_run())
    }

    fn result(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.seen)
    }
}

#[cfg(unix)]
fn sigkill(pid: u32) {
    pid::signal(pid, libc::SIGKILL);
}

#[cfg(unix)]
fn kill_during_run_two(handle: &Handle<Recorder>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.listen(Duration::from_millis(100)).unwrap() != Some(2) {
        assert!(Instant::now() < deadline, "run 2 was never reported");
    }
    sigkill(handle.pid());
}

#[cfg(unix)]
#[test]
fn a_sigkilled_child_with_lives_restarts_from_its_checkpoint_and_finishes() {
    let _bound = bound::within(TEST_BOUND);
    let config = Recorder::default_config().lives(3);
    let handle = Recorder::default().start_with(config).unwrap();
    let first_pid = handle.pid();
    kill_during_run_two(&handle);
    assert!(handle.wait(Duration::from_secs(30)));
    let status = handle.status();
    assert_eq!((status.restarts, status.lives_left), (1, 2));
    assert_ne!(handle.pid(), first_pid);
    assert_eq!(handle.result_timeout(BOUND).unwrap(), vec![0, 1, 2, 3, 4]);
}

#[cfg(unix)]
#[test]
fn a_sigkilled_child_without_lives_is_a_crash_error_naming_the_signal() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Recorder::default().start().unwrap();
    kill_during_run_two(&handle);
    match handle.result_timeout(BOUND).unwrap_err() {
        Error::Crashed { status, run } => {
            assert!(status.contains("SIGKILL"), "{status}");
            assert!((2..5).contains(&run), "run = {run}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[derive(Serialize, Deserialize, Default)]
struct AbortsOnce {
    runs_done: u32,
}

#[skprocess(runs = 3, lives = 2)]
impl AbortsOnce {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            std::process::abort();
        }
        self.runs_done += 1;
    }

    fn result(&mut self) -> u32 {
        self.runs_done
    }
}

#[test]
fn an_aborting_hook_is_recovered_with_a_life() {
    let _bound = bound::within(TEST_BOUND);
    let handle = AbortsOnce::default().start().unwrap();
    assert!(handle.wait(Duration::from_secs(30)));
    assert_eq!(handle.status().restarts, 1);
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 3);
}

#[derive(Serialize, Deserialize)]
struct CrashThenRecover;

#[skprocess]
impl CrashThenRecover {
    fn run(&mut self) {
        std::process::abort();
    }

    fn result(&mut self) -> String {
        "finished".into()
    }

    fn error(&mut self, error: &Error) -> String {
        format!("recovered from: {error}")
    }
}

#[test]
fn the_error_hook_also_handles_a_hard_crash() {
    let _bound = bound::within(TEST_BOUND);
    let message = CrashThenRecover
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert!(
        message.starts_with("recovered from: process crashed on run 0"),
        "{message}"
    );
}

#[derive(Serialize, Deserialize)]
struct Timed;

#[skprocess(runs = 5)]
impl Timed {
    fn prerun(&mut self) {}

    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn timers_count_every_run_and_full_run() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Timed.start().unwrap();
    assert!(handle.wait(Duration::from_secs(30)));
    let timers = handle.timers().unwrap();
    assert_eq!((timers.hooks.run.count(), timers.full_run.count()), (5, 5));
    assert_eq!(
        (timers.hooks.prerun.count(), timers.hooks.onfinish.count()),
        (5, 1)
    );
    assert!(timers.hook(Hook::Run).min().unwrap() >= Duration::from_millis(2));
    let status = handle.status();
    assert_eq!(status.completed_runs, 5);
    assert!(status.busy >= Duration::from_millis(10));
    handle.result_timeout(BOUND).unwrap();
}

#[test]
fn zero_lives_are_rejected_before_spawning() {
    let _bound = bound::within(TEST_BOUND);
    let error = Timed
        .start_with(Timed::default_config().lives(0))
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[derive(Serialize, Deserialize)]
struct Freezable;

#[skprocess(runs = 1, lives = 2, timeout(run = "300ms"), outbox = u32)]
impl Freezable {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        if ctx.lives_left() == ctx.config().lives {
            ctx.tell(std::process::id())?;
            std::thread::sleep(Duration::from_secs(5));
        }
        Ok(())
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> u32 {
        ctx.lives_left()
    }
}

#[cfg(unix)]
#[test]
fn the_parent_enforces_a_timeout_even_when_the_child_is_frozen() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Freezable.start().unwrap();
    let pid = handle.listen(Duration::from_secs(10)).unwrap().unwrap();
    // A stopped process runs no thread at all, so its own watchdog cannot fire.
    pid::signal(pid, libc::SIGSTOP);
    assert!(handle.wait(Duration::from_secs(30)));
    assert_eq!(handle.status().restarts, 1);
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 1);
}

#[cfg(unix)]
#[test]
fn a_frozen_child_without_lives_is_a_timeout_error() {
    let _bound = bound::within(TEST_BOUND);
    let config = Freezable::default_config().lives(1);
    let handle = Freezable.start_with(config).unwrap();
    let pid = handle.listen(Duration::from_secs(10)).unwrap().unwrap();
    pid::signal(pid, libc::SIGSTOP);
    match handle.result_timeout(BOUND) {
        Err(Error::Timeout { hook, limit, run }) => {
            assert_eq!(
                (hook, limit, run),
                (Hook::Run, Duration::from_millis(300), 0)
            );
        }
        other => panic!("unexpected outcome: {other:?}"),
    }
}
