//! What procspawn users expect of a child (issue 16, Must have 9 and 8): a panic anywhere in a
//! child carries its location and, when asked for, its backtrace; a child's stdout and stderr
//! can be inherited, captured or logged; its environment, working directory and arguments are
//! set per process; and a child of a test binary does not print libtest's header.

use std::sync::Mutex;
use std::time::Duration;

use skprocess::error::{PanicLocation, PanicSite};
use skprocess::prelude::*;
use skprocess::process::CapturedOutput;
use skprocess::{ChildSetup, Hook, PoolConfig, Stdio, WorkerResource, run, run_with};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

const TEST_BOUND: Duration = Duration::from_secs(120);
const BOUND: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Explodes;

/// The line of the `panic!` in [`Explodes::run`].
const EXPLODES_LINE: u32 = line!() + 4;
#[skprocess]
impl Explodes {
    fn run(&mut self) {
        panic!("exploded in run");
    }
}

/// The panic's location and backtrace in a hook's error.
fn hook_panic(error: &Error) -> (&Option<PanicLocation>, &Option<String>) {
    match error {
        Error::Panicked {
            site: PanicSite::Hook {
                hook: Hook::Run, ..
            },
            message,
            location,
            backtrace,
        } => {
            assert_eq!(message, "exploded in run");
            (location, backtrace)
        }
        other => panic!("expected a panic in run, got {other:?}"),
    }
}

/// No backtrace is asked for, whatever the test's own environment says.
fn no_backtrace() -> Config {
    Explodes::default_config()
        .env("RUST_BACKTRACE", "0")
        .stderr(Stdio::Null)
}

#[test]
fn a_hook_panic_carries_its_location_and_no_backtrace_unless_asked() {
    let _bound = bound::within(TEST_BOUND);
    let error = Explodes.start_with(no_backtrace()).unwrap();
    let error = error.result_timeout(BOUND).unwrap_err();
    let (location, backtrace) = hook_panic(&error);
    let location = location.as_ref().expect("a location");
    assert_eq!(location.file, "tests/child_setup.rs");
    assert_eq!(location.line, EXPLODES_LINE);
    assert_eq!(location.column, 9);
    assert_eq!(backtrace, &None);
    assert_eq!(
        error.to_string(),
        format!(
            "`run` hook panicked on run 0 at tests/child_setup.rs:{EXPLODES_LINE}:9: exploded in run"
        )
    );
}

#[test]
fn rust_backtrace_in_the_childs_environment_brings_its_backtrace() {
    let _bound = bound::within(TEST_BOUND);
    let config = no_backtrace().env("RUST_BACKTRACE", "1");
    let error = Explodes.start_with(config).unwrap();
    let error = error.result_timeout(BOUND).unwrap_err();
    let (location, backtrace) = hook_panic(&error);
    assert!(location.is_some());
    let backtrace = backtrace.as_deref().expect("a backtrace");
    assert!(backtrace.contains("Explodes"), "{backtrace}");
}

/// The line of the `assert!` in [`panics_on_three`].
const THREE_LINE: u32 = line!() + 2;
fn panics_on_three(x: u64) -> u64 {
    assert!(x != 3, "no threes");
    x
}

/// Asserts that `error` is the panic of [`panics_on_three`] with its location.
fn assert_three_panic(error: &Error) {
    match error {
        Error::Panicked {
            message, location, ..
        } => {
            assert_eq!(message, "no threes");
            let location = location.as_ref().expect("a location");
            assert_eq!(location.file, "tests/child_setup.rs");
            assert_eq!(location.line, THREE_LINE);
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn a_panic_in_a_pool_item_a_run_and_a_resident_worker_carries_its_location() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    match pool.map(panics_on_three, [1, 2, 3]) {
        Err(Error::Item { index: 2, error }) => assert_three_panic(&error),
        other => panic!("expected item 2 to fail, got {other:?}"),
    }
    let worker = run(panics_on_three as fn(u64) -> u64, (3,)).unwrap();
    assert_three_panic(&worker.join().unwrap_err());
    let mut resource = WorkerResource::new(panics_on_three).unwrap();
    assert_three_panic(&resource.execute(3).unwrap_err());
}

#[derive(Serialize, Deserialize)]
struct Surroundings;

#[skprocess]
impl Surroundings {
    fn run(&mut self) {}

    fn result(&mut self) -> (Option<String>, String, Vec<String>) {
        let variable = std::env::var("SKPROCESS_TEST_VARIABLE").ok();
        // Canonical, as the test's expectation is (Windows spells it `\\?\C:\…`).
        let dir = std::env::current_dir().unwrap().canonicalize().unwrap();
        let dir = dir.display().to_string();
        let args = std::env::args().collect();
        (variable, dir, args)
    }
}

#[test]
fn the_environment_working_directory_and_arguments_are_the_configs() {
    let _bound = bound::within(TEST_BOUND);
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let config = Surroundings::default_config()
        .env("SKPROCESS_TEST_VARIABLE", "set for this child")
        .current_dir(&dir)
        .args(["--first", "second"]);
    let handle = Surroundings.start_with(config).unwrap();
    let (variable, child_dir, args) = handle.result_timeout(BOUND).unwrap();
    assert_eq!(variable.as_deref(), Some("set for this child"));
    assert_eq!(child_dir, dir.display().to_string());
    let last: Vec<&str> = args
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(last, ["--first", "second"], "{args:?}");
    // Nothing of it leaks into the next child.
    let handle = Surroundings.start().unwrap();
    let (variable, _, args) = handle.result_timeout(BOUND).unwrap();
    assert_eq!(variable, None);
    assert!(!args.iter().any(|arg| arg == "--first"), "{args:?}");
}

/// A worker's variable, working directory and arguments.
type Seen = (Option<String>, String, Vec<String>);

/// What a worker sees of its surroundings: a variable, its working directory, its arguments.
fn worker_surroundings(_: u64) -> Seen {
    let variable = std::env::var("SKPROCESS_TEST_VARIABLE").ok();
    // Canonical, as the test's expectation is (Windows spells it `\\?\C:\…`).
    let dir = std::env::current_dir().unwrap().canonicalize().unwrap();
    let dir = dir.display().to_string();
    (variable, dir, std::env::args().collect())
}

/// The last two of `args`.
fn last_two(args: &[String]) -> Vec<&str> {
    let from = args.len().saturating_sub(2);
    args.get(from..)
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect()
}

#[test]
fn workers_take_the_same_setup_as_a_process() {
    let _bound = bound::within(TEST_BOUND);
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let setup = ChildSetup::default()
        .env("SKPROCESS_TEST_VARIABLE", "set for this worker")
        .current_dir(&dir)
        .args(["--first", "second"]);
    let check = |(variable, child_dir, args): Seen, form: &str| {
        assert_eq!(variable.as_deref(), Some("set for this worker"), "{form}");
        assert_eq!(child_dir, dir.display().to_string(), "{form}");
        assert_eq!(last_two(&args), ["--first", "second"], "{form}: {args:?}");
    };
    let pool = Pool::with_config(PoolConfig::default().workers(1).setup(setup.clone())).unwrap();
    let mut seen = pool.map(worker_surroundings, [0]).unwrap();
    check(seen.pop().unwrap(), "pool");
    let worker = run_with(worker_surroundings as fn(u64) -> Seen, (0,), setup.clone()).unwrap();
    check(worker.join().unwrap(), "run_with");
    let mut resource = WorkerResource::with_setup(worker_surroundings, setup).unwrap();
    check(resource.execute(0).unwrap(), "WorkerResource");
    // The same through PoolConfig's own setters, and nothing of it in a plain worker.
    let config = PoolConfig::default()
        .workers(1)
        .env("SKPROCESS_TEST_VARIABLE", "set for this worker")
        .current_dir(&dir)
        .args(["--first", "second"]);
    let pool = Pool::with_config(config).unwrap();
    check(
        pool.map(worker_surroundings, [0]).unwrap().remove(0),
        "PoolConfig setters",
    );
    let (variable, _, args) = run(worker_surroundings as fn(u64) -> Seen, (0,))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(variable, None);
    assert!(!args.iter().any(|arg| arg == "--first"), "{args:?}");
}

/// Says `x` on both streams.
fn worker_talks(x: u64) -> u64 {
    println!("out {x}");
    eprintln!("err {x}");
    x
}

/// What `captured` holds once its children closed their streams: (stdout, stderr).
fn read_captured(captured: &CapturedOutput) -> (String, String) {
    assert!(captured.wait_timeout(BOUND), "the streams stayed open");
    (
        String::from_utf8(captured.stdout()).unwrap(),
        String::from_utf8(captured.stderr()).unwrap(),
    )
}

#[test]
fn a_workers_output_is_captured_and_read_from_its_handle() {
    let _bound = bound::within(TEST_BOUND);
    let setup = ChildSetup::default()
        .stdout(Stdio::Capture)
        .stderr(Stdio::Capture);
    let expected = |x: u64| (format!("out {x}\n"), format!("err {x}\n"));

    let pool = Pool::with_config(PoolConfig::default().workers(1).setup(setup.clone())).unwrap();
    assert_eq!(pool.map(worker_talks, [1]).unwrap(), [1]);
    let captured = pool.captured().expect("the pool captures");
    pool.stop().unwrap();
    assert_eq!(read_captured(&captured), expected(1));

    let worker = run_with(worker_talks as fn(u64) -> u64, (2,), setup.clone()).unwrap();
    let captured = worker.captured().expect("the worker captures");
    assert_eq!(worker.join().unwrap(), 2);
    captured.wait(); // the form without a limit (the test's bound is the net)
    assert_eq!(read_captured(&captured), expected(2));

    let mut resource = WorkerResource::with_setup(worker_talks, setup).unwrap();
    assert_eq!(resource.execute(3).unwrap(), 3);
    let captured = resource.captured().expect("the resource captures");
    resource.stop().unwrap();
    assert_eq!(read_captured(&captured), expected(3));

    assert!(Pool::new(1).unwrap().captured().is_none());
    assert!(
        run(worker_talks as fn(u64) -> u64, (4,))
            .unwrap()
            .captured()
            .is_none()
    );
}

#[derive(Serialize, Deserialize)]
struct Talks;

#[skprocess(runs = 2)]
impl Talks {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        println!("out line {}", ctx.current_run());
        eprintln!("err line {}", ctx.current_run());
    }
}

#[test]
fn captured_output_is_read_from_the_handle_without_libtests_header() {
    let _bound = bound::within(TEST_BOUND);
    let config = Talks::default_config()
        .stdout(Stdio::Capture)
        .stderr(Stdio::Capture);
    let handle = Talks.start_with(config).unwrap();
    let captured = handle.captured().expect("capturing");
    handle.result_timeout(BOUND).unwrap();
    assert!(captured.wait_timeout(BOUND));
    assert_eq!(
        String::from_utf8(captured.stdout()).unwrap(),
        "out line 0\nout line 1\n"
    );
    assert_eq!(
        String::from_utf8(captured.stderr()).unwrap(),
        "err line 0\nerr line 1\n"
    );
    assert!(Talks.start().unwrap().captured().is_none());
}

#[derive(Serialize, Deserialize)]
struct CrashesOnce;

#[skprocess(lives = 2)]
impl CrashesOnce {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        println!("attempt with {} lives", ctx.lives_left());
        if ctx.lives_left() == 2 {
            // A hard crash: the next child starts from the checkpoint.
            std::process::abort();
        }
    }
}

#[test]
fn every_child_of_a_restarted_process_appends_to_its_captured_output() {
    let _bound = bound::within(TEST_BOUND);
    let config = CrashesOnce::default_config()
        .stdout(Stdio::Capture)
        .stderr(Stdio::Null);
    let handle = CrashesOnce.start_with(config).unwrap();
    let captured = handle.captured().expect("capturing");
    handle.result_timeout(BOUND).unwrap();
    assert!(captured.wait_timeout(BOUND));
    assert_eq!(
        String::from_utf8(captured.stdout()).unwrap(),
        "attempt with 2 lives\nattempt with 1 lives\n"
    );
}

/// Lines the parent's subscriber saw: `(level, stream, pid, message)`.
static SEEN: Mutex<Vec<(tracing::Level, String, String, String)>> = Mutex::new(Vec::new());

struct Collect;

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        #[derive(Default)]
        struct Fields(String, String, String);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.2 = format!("{value:?}"),
                    "pid" => self.1 = format!("{value:?}"),
                    _ => {}
                }
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "stream" {
                    self.0 = value.to_owned();
                }
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                if field.name() == "pid" {
                    self.1 = value.to_string();
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        SEEN.lock()
            .unwrap()
            .push((level, fields.0, fields.1, fields.2));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn logged_output_reaches_the_parents_subscriber_line_by_line() {
    let _bound = bound::within(TEST_BOUND);
    tracing::subscriber::set_global_default(Collect).unwrap();
    let config = Talks::default_config()
        .stdout(Stdio::Log)
        .stderr(Stdio::Log);
    let handle = Talks.start_with(config).unwrap();
    let pid = handle.pid().to_string();
    handle.result_timeout(BOUND).unwrap();
    let mut lines = Vec::new();
    bound::eventually(BOUND, || {
        lines = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, stream, seen_pid, _)| !stream.is_empty() && *seen_pid == pid)
            .cloned()
            .collect();
        lines.len() >= 4
    });
    lines.sort_by(|a, b| a.3.cmp(&b.3));
    let expected = [
        (tracing::Level::WARN, "stderr", "err line 0"),
        (tracing::Level::WARN, "stderr", "err line 1"),
        (tracing::Level::INFO, "stdout", "out line 0"),
        (tracing::Level::INFO, "stdout", "out line 1"),
    ];
    let got: Vec<_> = lines
        .iter()
        .map(|(level, stream, _, message)| (*level, stream.as_str(), message.as_str()))
        .collect();
    assert_eq!(got, expected);
}

#[derive(Serialize, Deserialize)]
struct Greets;

#[skprocess]
impl Greets {
    fn run(&mut self) {
        println!("hello from the hook");
    }
}

/// Not a test of its own: run by [`a_test_childs_output_has_the_hooks_print_but_no_header`]
/// in a fresh run of this binary, whose whole output that test reads.
#[test]
fn starts_a_child_that_prints() {
    if std::env::var_os("SKPROCESS_TEST_INNER").is_none() {
        return;
    }
    Greets.start().unwrap().result_timeout(BOUND).unwrap();
}

#[test]
fn a_test_childs_output_has_the_hooks_print_but_no_header() {
    let _bound = bound::within(TEST_BOUND);
    let output = bound::on_thread(BOUND, "the inner test run", || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["starts_a_child_that_prints", "--exact", "--nocapture"])
            .env("SKPROCESS_TEST_INNER", "1")
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("hello from the hook\n"), "{stdout}");
    // The inner run's own header, and none from its child.
    assert_eq!(stdout.matches("running 1 test").count(), 1, "{stdout}");
}
