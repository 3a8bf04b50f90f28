skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// The environment hooks run in: a child of this test binary and a child of a
// `#[skprocess::main]` binary must look the same — hooks on a thread named `main`, SIGPIPE
// as the Rust runtime leaves it, and no bootstrap variable. A program started from a hook is a
// parent in its own right, never mistaken for a child.

use std::time::Duration;

use skprocess::prelude::*;
#[cfg(unix)]
use skprocess_user_crate::BOOTSTRAP_VARIABLE;
use skprocess_user_crate::{EnvProbe, EnvReport, Finished, RunProgram, Sigpipe, run_bounded};

const LIMIT: Duration = Duration::from_secs(30);
const USER_MAIN: &str = env!("CARGO_BIN_EXE_user_main");

fn test_child_report() -> EnvReport {
    EnvProbe::default()
        .start()
        .unwrap()
        .result_timeout(LIMIT)
        .unwrap()
}

fn binary_child_report() -> String {
    let finished = run_bounded(USER_MAIN, &[], LIMIT).unwrap();
    assert!(
        !finished.timed_out,
        "user_main overran {LIMIT:?}: {finished:?}"
    );
    assert_eq!(finished.code, Some(0), "user_main failed: {finished:?}");
    let mut lines = finished.stdout.lines();
    let report = lines.next().expect("user_main printed nothing").to_owned();
    assert_eq!(lines.next(), None, "more than one line: {finished:?}");
    report
}

#[test]
fn a_test_child_and_a_binary_child_see_the_same_environment() {
    let _bound = bound::within(TEST_BOUND);
    let from_test = test_child_report();
    let from_binary = binary_child_report();
    assert_eq!(from_test.to_string(), from_binary);
    assert_eq!(from_test.thread.as_deref(), Some("main"));
    assert!(!from_test.env_visible);
    #[cfg(unix)]
    assert_eq!(from_test.sigpipe, Sigpipe::Ignored);
    assert_eq!(from_binary, "thread=main sigpipe=ignored env=absent");
}

#[test]
fn a_child_sees_sigpipe_as_this_process_does() {
    let _bound = bound::within(TEST_BOUND);
    // The Rust runtime ignores SIGPIPE before `main`, in test binaries too.
    let here = Sigpipe::current();
    assert_eq!(test_child_report().sigpipe, here);
    assert_ne!(here, Sigpipe::Unknown);
}

#[test]
fn a_program_started_from_a_hook_runs_as_a_parent() {
    let _bound = bound::within(TEST_BOUND);
    let launcher = RunProgram::new(USER_MAIN, &[]);
    let (finished, env_visible_in_hook): (Finished, bool) = launcher
        .start()
        .unwrap()
        .result_timeout(Duration::from_secs(60))
        .unwrap();
    assert!(!env_visible_in_hook);
    assert!(!finished.timed_out, "{finished:?}");
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_eq!(
        finished.stdout, "thread=main sigpipe=ignored env=absent\n",
        "{finished:?}"
    );
}

#[cfg(unix)]
#[test]
fn the_bootstrap_variable_does_not_reach_a_shell_started_from_a_hook() {
    let _bound = bound::within(TEST_BOUND);
    let probe = format!("printf '%s' \"${{{BOOTSTRAP_VARIABLE}-unset}}\"");
    let launcher = RunProgram::new("/bin/sh", &["-c", &probe]);
    let (finished, env_visible_in_hook) = launcher.start().unwrap().result_timeout(LIMIT).unwrap();
    assert!(!env_visible_in_hook);
    assert_eq!(
        (finished.code, finished.stdout.as_str()),
        (Some(0), "unset")
    );
}
