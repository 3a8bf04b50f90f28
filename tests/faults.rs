//! Regression tests for faults found by user-style probing: sends to a child that stopped
//! reading, `error` hooks that die, long failure messages, timers across a restart, and
//! configurations no child could run with. Each asserts the documented behaviour.

skprocess::test_support!();

use skprocess::Hook;
use skprocess::error::PanicSite;
use skprocess::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// How a hook fails.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Die {
    /// Ends the child at once, as a crash would (SIGKILL; `TerminateProcess` on Windows).
    Kill,
    /// Raises a signal in the child.
    #[cfg(unix)]
    Signal(i32),
    /// Exits the child with this code.
    Exit(i32),
    /// Returns `Err("die errs")`.
    Err,
}

fn die(how: &Die) -> Result<(), String> {
    match how {
        Die::Kill => pid::kill(std::process::id()),
        // SAFETY: raising a signal in the current process; the tests want its default action.
        #[cfg(unix)]
        Die::Signal(signal) => unsafe {
            libc::raise(*signal);
        },
        Die::Exit(code) => std::process::exit(*code),
        Die::Err => return Err("die errs".into()),
    }
    Ok(())
}

/// A file in the temp directory that counts calls (one byte each), across child processes.
struct CallCounter(PathBuf);

impl CallCounter {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("skp-faults-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_owned()
    }

    fn calls(&self) -> usize {
        std::fs::metadata(&self.0).map_or(0, |m| m.len() as usize)
    }
}

impl Drop for CallCounter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Appends one byte to the file at `path`.
fn count_call(path: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(b"x").unwrap();
}

/// A `run` hook and an `error` hook that fail as told; the error hook counts its calls.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct ErrHooks {
    run_how: Option<Die>,
    error_how: Option<Die>,
    error_counter: Option<String>,
}

#[skprocess]
impl ErrHooks {
    fn run(&mut self) -> Result<(), String> {
        if let Some(how) = &self.run_how {
            die(how)?;
        }
        Ok(())
    }

    fn result(&mut self) -> Result<String, String> {
        Ok("result".into())
    }

    fn error(&mut self, error: &Error) -> Result<String, String> {
        if let Some(counter) = &self.error_counter {
            count_call(counter);
        }
        if let Some(how) = &self.error_how {
            die(how)?;
        }
        Ok(format!("recovered: {error}"))
    }
}

/// Fails in `run` with a message of `len` bytes, returned or panicked.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct LongErr {
    len: usize,
    panic: bool,
}

#[skprocess]
impl LongErr {
    fn run(&mut self) -> Result<(), String> {
        let message = "x".repeat(self.len);
        if self.panic {
            panic!("{message}");
        }
        Err(message)
    }
}

/// Kills itself in `run` of iteration `at_run`, in its first life only.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Crasher {
    at_run: u64,
    count: u64,
    log: Vec<u64>,
}

#[skprocess(runs = 5)]
impl Crasher {
    fn prerun(&mut self) {}

    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.count += 1;
        self.log.push(ctx.current_run());
        // State comes from the last checkpoint after a restart, so a flag in it would not
        // survive the kill: the lives left tell the first life apart.
        let first_life = ctx.lives_left() == ctx.config().lives;
        if first_life && ctx.current_run() == self.at_run {
            // The child kills itself, as a crash would.
            pid::kill(std::process::id());
        }
    }

    fn result(&mut self) -> (u64, Vec<u64>) {
        (self.count, self.log.clone())
    }

    fn postrun(&mut self) {}
}

/// A small counter.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct Counter {
    n: u64,
}

#[skprocess(runs = 10)]
impl Counter {
    fn run(&mut self) {
        self.n += 1;
    }

    fn result(&mut self) -> u64 {
        self.n
    }
}

/// An `error` hook that dies in `how` after `run` returned `Err("die errs")`.
fn error_hook_dies(name: &str, how: Die) {
    let counter = CallCounter::new(name);
    let config = ErrHooks::default_config().lives(1);
    let result = ErrHooks {
        run_how: Some(Die::Err),
        error_how: Some(how.clone()),
        error_counter: Some(counter.path()),
    }
    .start_with(config)
    .unwrap()
    .result_timeout(BOUND);
    assert!(
        matches!(
            &result,
            Err(Error::Hook { hook: Hook::Run, message, .. })
                if message == "die errs"
        ),
        "error hook {how:?}: got {result:?}"
    );
    assert_eq!(counter.calls(), 1, "error hook {how:?}: call count");
}

#[test]
fn an_error_hook_that_exits_keeps_the_original_error() {
    let _bound = bound::within(TEST_BOUND);
    error_hook_dies("exit", Die::Exit(3));
}

#[test]
fn an_error_hook_that_kills_itself_keeps_the_original_error() {
    let _bound = bound::within(TEST_BOUND);
    error_hook_dies("kill", Die::Kill);
}

/// Frozen by SIGSTOP, so not even its watchdog runs: the parent ends it.
#[cfg(unix)]
#[test]
fn a_frozen_error_hook_times_out_into_the_original_error() {
    let _bound = bound::within(TEST_BOUND);
    let config = ErrHooks::default_config().timeout(Hook::Error, Duration::from_millis(100));
    let result = ErrHooks {
        run_how: Some(Die::Err),
        error_how: Some(Die::Signal(libc::SIGSTOP)),
        error_counter: None,
    }
    .start_with(config)
    .unwrap()
    .result_timeout(BOUND);
    assert!(
        matches!(
            &result,
            Err(Error::Hook {
                hook: Hook::Run,
                ..
            })
        ),
        "got {result:?}"
    );
}

/// Asserts `result` is a `run` failure (a panic when `panicked`) whose message was cut to fit.
fn assert_cut(result: Result<(), Error>, panicked: bool) {
    let message = match &result {
        Err(Error::Hook {
            hook: Hook::Run,
            message,
            ..
        }) if !panicked => message,
        Err(Error::Panicked {
            site: PanicSite::Hook {
                hook: Hook::Run, ..
            },
            message,
            ..
        }) if panicked => message,
        other => panic!("got {:?}", other.as_ref().map_err(|e| e.to_string())),
    };
    assert!(message.len() < 10_000, "message of {} bytes", message.len());
    assert!(
        message.ends_with("bytes cut)"),
        "message ends {:?}",
        &message[message.len().saturating_sub(40)..]
    );
}

#[test]
fn a_long_error_message_is_cut_to_fit() {
    let _bound = bound::within(TEST_BOUND);
    let result = LongErr {
        len: 100_000,
        panic: false,
    }
    .start()
    .unwrap()
    .result_timeout(BOUND);
    assert_cut(result, false);
}

#[test]
fn a_long_error_message_fits_the_smallest_frame_limit() {
    let _bound = bound::within(TEST_BOUND);
    let config = LongErr::default_config().max_frame_bytes(64 * 1024);
    for panic in [false, true] {
        let result = LongErr {
            len: 100_000,
            panic,
        }
        .start_with(config.clone())
        .unwrap()
        .result_timeout(BOUND);
        assert_cut(result, panic);
    }
}

#[test]
fn timer_samples_survive_a_restart() {
    let _bound = bound::within(TEST_BOUND);
    let config = Crasher::default_config().lives(2);
    let handle = Crasher {
        at_run: 3,
        count: 0,
        log: vec![],
    }
    .start_with(config)
    .unwrap();
    assert!(handle.wait_timeout(BOUND), "not over within {BOUND:?}");
    let timers = handle.timers().unwrap();
    let counts = (
        timers.hook(Hook::Prerun).count(),
        timers.hook(Hook::Run).count(),
        timers.hook(Hook::Postrun).count(),
        timers.full_run.count(),
    );
    let status = handle.status();
    let (count, log) = handle.result_timeout(BOUND).unwrap();
    assert_eq!(
        status.restarts, 1,
        "the kill in iteration 3 must cost one life"
    );
    assert_eq!((count, log), (5, vec![0, 1, 2, 3, 4]));
    // Completed iterations only: the killed one never recorded its samples.
    assert_eq!(
        counts,
        (5, 5, 5, 5),
        "(prerun, run, postrun, full_run) counts"
    );
}

#[test]
fn the_smallest_frame_limit_is_usable() {
    let _bound = bound::within(TEST_BOUND);
    let config = Counter::default_config().max_frame_bytes(64 * 1024);
    let result = Counter { n: 0 }
        .start_with(config)
        .unwrap()
        .result_timeout(BOUND);
    assert_eq!(result.unwrap(), 10);
}

#[test]
fn configurations_no_child_could_run_with_are_refused_before_spawning() {
    let _bound = bound::within(TEST_BOUND);
    // The floor: the quickest of three starts that do spawn a child (it is killed at once).
    let spawn_floor = (0..3)
        .map(|_| {
            let started = Instant::now();
            let handle = Counter { n: 0 }.start().unwrap();
            let took = started.elapsed();
            handle.kill().unwrap();
            took
        })
        .min()
        .unwrap();
    let refused = [
        (
            "max_frame_bytes(4096)",
            Counter::default_config().max_frame_bytes(4096),
        ),
        (
            "timeout(Run, ZERO)",
            Counter::default_config().timeout(Hook::Run, Duration::ZERO),
        ),
    ];
    for (what, config) in refused {
        // The quickest of three refusals, beside the floor measured in this run: a refusal
        // that spawned a child first would cost at least the floor.
        let mut quickest = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let result = Counter { n: 0 }.start_with(config.clone());
            quickest = quickest.min(started.elapsed());
            assert!(
                matches!(&result, Err(Error::Config { .. })),
                "{what}: got {:?}",
                result.map(|h| h.pid())
            );
        }
        assert!(
            quickest < spawn_floor / 10,
            "{what}: refused after {quickest:?}, a start that spawns takes {spawn_floor:?}: as if a child was spawned"
        );
    }
}

/// Sends to a child that stopped reading: SIGSTOP, Unix by nature (Windows has no stop that
/// leaves a process alive and unscheduled for a test to undo).
#[cfg(unix)]
mod stopped_child {
    use super::*;
    use serde::de::{Deserializer, Visitor};
    use serde::ser::Serializer;

    /// Bytes serialized as one byte string (fast to encode).
    #[derive(Clone, Debug, PartialEq, Default)]
    struct Bytes(Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    /// Stops the child (SIGSTOP) and waits until it is stopped. It stays stopped until the test
    /// resumes it, so a call that waited on it would never return: the call's bound fails the
    /// test instead of a timing claim.
    fn stop_child(child: u32) {
        pid::signal(child, libc::SIGSTOP);
        bound::until(BOUND, "the child stops on SIGSTOP", || pid::stopped(child));
    }

    /// Resumes a child stopped by [`stop_child`].
    fn resume_child(child: u32) {
        pid::signal(child, libc::SIGCONT);
    }

    /// Never listens; sleeps in `run` until stopped.
    #[derive(Serialize, Deserialize, Clone, Debug, Default)]
    struct Sleeper {
        tick_ms: u64,
    }

    #[skprocess(runs = None, inbox = Bytes, outbox = u64)]
    impl Sleeper {
        fn run(&mut self) {
            std::thread::sleep(Duration::from_millis(self.tick_ms.max(1)));
        }

        fn result(&mut self) -> u64 {
            7
        }
    }

    #[test]
    fn try_tell_never_waits_on_a_stopped_child() {
        let _bound = bound::within(TEST_BOUND);
        let handle = Sleeper { tick_ms: 5 }.start().unwrap();
        let child = handle.pid();
        stop_child(child);
        let message = Bytes(vec![0; 1024]);
        // The child stays stopped until every call has returned: a `try_tell` that waited on it
        // would never return, and the bound fails the test.
        let (handle, sent, full) = bound::on_thread(BOUND, "1000 try_tell calls", move || {
            let (mut sent, mut full) = (0, 0);
            // 1000 is below the 1024 inbox credits: only the stopped reader can refuse them.
            for _ in 0..1000 {
                match handle.try_tell(message.clone()) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full(back)) => {
                        assert_eq!(back, message, "`Full` must give the message back");
                        full += 1;
                    }
                    Err(other) => panic!("try_tell failed: {other:?}"),
                }
            }
            (handle, sent, full)
        });
        assert!(
            pid::stopped(child),
            "the child was resumed during the calls"
        );
        resume_child(child);
        handle.kill().unwrap();
        assert!(
            full > 0,
            "the socket never filled ({sent} sent): the stopped reader was not exercised"
        );
    }

    #[test]
    fn tell_timeout_waits_at_most_its_timeout_on_a_stopped_child() {
        let _bound = bound::within(TEST_BOUND);
        let handle = Sleeper { tick_ms: 5 }.start().unwrap();
        let child = handle.pid();
        stop_child(child);
        let message = Bytes(vec![0; 1 << 20]);
        let timeout = Duration::from_millis(100);
        // The child stays stopped: a `tell_timeout` that ignored its timeout would wait for it
        // forever. A hundred times the timeout is the call's bound, not a timing claim.
        let (handle, sent) = bound::on_thread(timeout * 100, "tell_timeout(100ms)", {
            let message = message.clone();
            move || {
                let sent = handle.tell_timeout(message, timeout);
                (handle, sent)
            }
        });
        assert!(pid::stopped(child), "the child was resumed during the call");
        resume_child(child);
        handle.kill().unwrap();
        // Either it got a first part of the frame out (the rest follows once the child reads),
        // or nothing: then the message comes back.
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(back)) => assert!(back == message, "`Full` must give it back"),
            Err(other) => panic!("tell_timeout failed: {other:?}"),
        }
    }

    #[test]
    fn stop_does_not_wait_behind_a_tell_stuck_on_a_stopped_child() {
        let _bound = bound::within(TEST_BOUND);
        let handle = Sleeper { tick_ms: 5 }.start().unwrap();
        let child = handle.pid();
        stop_child(child);
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let told = std::thread::scope(|s| {
            let teller = s.spawn(|| {
                tid_tx.send(pid::current_tid()).unwrap();
                handle.tell(Bytes(vec![0; 1 << 20]))
            });
            let tid = tid_rx.recv_timeout(BOUND).unwrap();
            // The 1 MiB frame cannot fit the socket of a stopped reader: once the teller sleeps,
            // it is stuck in `tell` until the child resumes.
            bound::until(BOUND, "the teller blocks in tell()", || {
                teller.is_finished() || pid::thread_state(tid) == Some('S')
            });
            assert!(
                !teller.is_finished(),
                "tell() returned while the child was stopped"
            );
            // The child stays stopped until `stop()` returned: a `stop()` that waited behind the
            // stuck tell would never return, and the bound aborts naming it.
            bound::call(BOUND, "stop() while a tell is stuck", || {
                handle.request_stop()
            });
            assert!(
                !teller.is_finished(),
                "the tell finished before stop() returned: stop() did not run beside it"
            );
            resume_child(child);
            bound::until(BOUND, "the tell finishes after SIGCONT", || {
                teller.is_finished()
            });
            teller.join().unwrap()
        });
        assert!(told.is_ok(), "tell after SIGCONT: {told:?}");
        // The deferred stop reaches the resumed child: it finishes by itself.
        assert_eq!(handle.result_timeout(BOUND).unwrap(), 7);
    }
}
