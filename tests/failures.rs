//! Hook failures, crashes and cleanup, across real child processes.

use skprocess::prelude::*;
use skprocess::{FailureKind, Hook};
use std::time::Duration;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct FailsOnRun {
    fail_at: u64,
}

#[skprocess(runs = 5)]
impl FailsOnRun {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), String> {
        if ctx.current_run() == self.fail_at {
            return Err(format!("test failure at {}", self.fail_at));
        }
        Ok(())
    }
}

#[test]
fn a_returned_error_keeps_hook_run_and_message_across_the_boundary() {
    let _bound = bound::within(TEST_BOUND);
    let error = FailsOnRun { fail_at: 2 }
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    match &error {
        Error::Hook {
            hook,
            run,
            kind,
            message,
            ..
        } => {
            assert_eq!((*hook, *run, *kind), (Hook::Run, 2, FailureKind::Returned));
            assert_eq!(message, "test failure at 2");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "`run` hook failed on run 2: test failure at 2"
    );
}

#[derive(Serialize, Deserialize)]
struct PanicsInOnfinish;

#[skprocess]
impl PanicsInOnfinish {
    fn run(&mut self) {}

    fn onfinish(&mut self) {
        panic!("onfinish exploded");
    }
}

#[test]
fn a_panic_becomes_an_error_with_the_panic_message() {
    let _bound = bound::within(TEST_BOUND);
    let error = PanicsInOnfinish
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert!(
        matches!(&error, Error::Hook { hook: Hook::Onfinish, run: 1, kind: FailureKind::Panicked, message, .. } if message == "onfinish exploded"),
        "{error:?}"
    );
}

#[derive(Serialize, Deserialize)]
struct FallibleResult {
    ok: bool,
}

#[skprocess]
impl FallibleResult {
    fn run(&mut self) {}

    fn result(&mut self) -> Result<u8, String> {
        if self.ok {
            Ok(7)
        } else {
            Err("no result".into())
        }
    }
}

#[test]
fn a_fallible_result_hook_delivers_its_value_or_its_error() {
    let _bound = bound::within(TEST_BOUND);
    assert_eq!(
        FallibleResult { ok: true }
            .start()
            .unwrap()
            .result_timeout(BOUND)
            .unwrap(),
        7
    );
    let error = FallibleResult { ok: false }
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert_result_hook_failed(&error);
}

#[derive(Serialize, Deserialize)]
struct Aborts;

#[skprocess]
impl Aborts {
    fn run(&mut self) {
        std::process::abort();
    }
}

#[test]
fn a_hard_crash_is_an_explicit_error_naming_the_signal() {
    let _bound = bound::within(TEST_BOUND);
    let error = Aborts.start().unwrap().result_timeout(BOUND).unwrap_err();
    match &error {
        Error::Crashed { status, run } => {
            assert_eq!(*run, 0);
            #[cfg(unix)]
            assert!(status.contains("SIGABRT"), "{status}");
            // `abort` is a fail-fast on Windows: NTSTATUS 0xC0000409.
            #[cfg(windows)]
            assert!(status.contains("STATUS_STACK_BUFFER_OVERRUN"), "{status}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(!error.to_string().is_empty());
}

#[derive(Serialize, Deserialize)]
struct Quick;

#[skprocess]
impl Quick {
    fn run(&mut self) {}

    fn result(&mut self) -> u32 {
        std::process::id()
    }
}

/// A spawn's rendezvous directory is gone once its child connected. What stays in the socket
/// directory is this process's one log collector for it (it serves every child spawned there
/// and lives as long as this process), so a second start there leaves the same entries.
#[test]
fn the_socket_directory_is_gone_once_the_child_connected() {
    let _bound = bound::within(TEST_BOUND);
    let base = std::env::temp_dir().join(format!("skp-test-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let entries = || -> Vec<_> {
        let mut names: Vec<_> = std::fs::read_dir(&base)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let mut seen = Vec::new();
    for _ in 0..2 {
        let handle = Quick
            .start_with(Quick::default_config().socket_dir(&base))
            .unwrap();
        let left = entries();
        assert!(left.len() <= 1, "socket directories left behind: {left:?}");
        if !seen.is_empty() {
            assert_eq!(left, seen, "a second start left its own directory");
        }
        seen = left;
        let child_pid = handle.result_timeout(BOUND).unwrap();
        assert_ne!(
            child_pid,
            std::process::id(),
            "the hook must run in another process"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn an_unusable_socket_directory_is_a_clear_error() {
    let _bound = bound::within(TEST_BOUND);
    let missing = std::env::temp_dir()
        .join("skp-test-does-not-exist")
        .join("nested");
    let error = Quick
        .start_with(Quick::default_config().socket_dir(missing))
        .unwrap_err();
    assert!(matches!(error, Error::Io(_)), "{error:?}");
}

#[test]
fn too_small_a_frame_limit_is_rejected_before_spawning() {
    let _bound = bound::within(TEST_BOUND);
    let error = Quick
        .start_with(Quick::default_config().max_frame_bytes(16))
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[derive(Serialize, Deserialize)]
struct BigOutput {
    len: usize,
}

#[skprocess(inbox = Vec<u8>)]
impl BigOutput {
    fn run(&mut self) {}

    fn result(&mut self) -> Vec<u8> {
        vec![7; self.len]
    }
}

#[test]
fn an_output_over_the_frame_limit_is_an_error_not_a_hang() {
    let _bound = bound::within(TEST_BOUND);
    let config = BigOutput::default_config().max_frame_bytes(64 * 1024);
    let handle = BigOutput { len: 1024 * 1024 }.start_with(config).unwrap();
    let error = handle.result_timeout(Duration::from_secs(20)).unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { size, limit } if size > 1024 * 1024 && limit < 64 * 1024),
        "{error:?}"
    );
}

#[test]
fn a_message_over_the_frame_limit_is_refused_by_the_sender() {
    let _bound = bound::within(TEST_BOUND);
    let config = BigOutput::default_config().max_frame_bytes(64 * 1024);
    let handle = BigOutput { len: 1 }.start_with(config).unwrap();
    let error = handle.tell(vec![0; 128 * 1024]).unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { size, limit: 65536 } if size > 128 * 1024),
        "{error:?}"
    );
    assert_eq!(
        handle.result_timeout(Duration::from_secs(20)).unwrap(),
        vec![7]
    );
}

fn assert_result_hook_failed(error: &Error) {
    assert!(
        matches!(
            error,
            Error::Hook {
                hook: Hook::Result,
                ..
            }
        ),
        "{error:?}"
    );
}
