//! Process control on Windows, with real processes: this test binary started again with a
//! filter naming one helper test, which does its part only when [`ENV_RERUN`] is set.

use super::super::job::spawn_outside_job;
use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use windows_sys::Win32::System::Threading::GetExitCodeProcess;

/// Set in a re-run test binary: its helper tests do their part.
const ENV_RERUN: &str = "SKPROCESS_SYS_TEST_CHILD";

/// This test binary, started again to run the helper tests whose names contain `filter`.
pub(crate) fn rerun(filter: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([filter, "--nocapture", "--test-threads=1", "-q"])
        .env(ENV_RERUN, "1")
        .stdin(Stdio::null());
    command
}

/// Whether this process is a re-run started by [`rerun`].
pub(crate) fn is_rerun() -> bool {
    std::env::var_os(ENV_RERUN).is_some()
}

/// The value after `key` on one of `text`'s lines.
pub(crate) fn marked<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|value| value.trim().parse().ok())
}

/// Reads `child`'s stdout until a line starting with `key`, and returns its value.
pub(crate) fn read_marked<T: std::str::FromStr>(child: &mut std::process::Child, key: &str) -> T {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the child ended before it said")
            .unwrap();
        if let Some(value) = marked(&line, key) {
            return value;
        }
    }
}

/// Waits up to `limit` for the process behind `process` to end; its exit code.
pub(crate) fn exit_code_within(process: &Process, limit: Duration) -> Option<u32> {
    let millis = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: an open process handle with SYNCHRONIZE access.
    if unsafe { WaitForSingleObject(process.raw(), millis) } != WAIT_OBJECT_0 {
        return None;
    }
    let mut code = 0u32;
    // SAFETY: an open handle with query access; `code` is a valid out-parameter.
    (unsafe { GetExitCodeProcess(process.raw(), &mut code) } != 0).then_some(code)
}

pub(crate) fn open_for_wait(pid: u32) -> Process {
    Process::open(pid, PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION).unwrap()
}

/// A process that sleeps (long enough for any test) until it is ended.
fn sleeper() -> std::process::Child {
    spawn_outside_job(rerun("process::tests::helper_sleeps").stdout(Stdio::null())).unwrap()
}

#[test]
fn helper_sleeps() {
    if is_rerun() {
        std::thread::sleep(Duration::from_secs(120));
    }
}

#[test]
fn crash_codes_and_kills_are_said_in_words() {
    let say = |code: u32| describe_status(ExitStatus::from_raw(code));
    assert!(
        say(0xC000_0005).contains("access violation"),
        "{}",
        say(0xC000_0005)
    );
    assert!(say(0xC000_0409).contains("stack buffer overrun"));
    assert!(say(0xC000_00FD).contains("stack overflow"));
    assert!(say(0xC000_0005).contains("0xC0000005"));
    assert_eq!(say(0xC012_3456), "crashed with NTSTATUS 0xC0123456");
    assert!(describe_status(exit_status_killed()).starts_with("killed"));
    assert_eq!(
        describe_status(exit_status_from_code(3)),
        "exited with code 3"
    );
    assert_eq!(
        describe_status(exit_status_from_code(101)),
        "exited with code 101"
    );
}

#[test]
fn kill_ends_a_process_with_the_killed_code() {
    let mut child = sleeper();
    kill(child.id()).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code().map(|c| c as u32), Some(EXIT_KILLED));
    assert!(describe_status(status).starts_with("killed"), "{status:?}");
}

#[test]
fn terminate_ends_a_child_and_an_ended_one_is_no_error() {
    let mut child = sleeper();
    terminate(&mut child).unwrap();
    let status = child.wait().unwrap();
    assert!(describe_status(status).starts_with("killed"), "{status:?}");
    terminate(&mut child).unwrap();
}

#[test]
fn an_exit_is_seen_without_taking_the_status() {
    let mut child = spawn_outside_job(&mut rerun("no test has this name")).unwrap();
    wait_exited(child.id()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_exited(child.id()) {
        assert!(Instant::now() < deadline, "the exit was not seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.try_wait().unwrap().expect("the status was gone");
    assert!(status.success(), "{status:?}");
    assert!(!has_exited(std::process::id()));
}

#[test]
fn helper_aborts() {
    if is_rerun() {
        std::process::abort();
    }
}

#[test]
fn an_abort_is_a_stack_buffer_overrun_in_words() {
    let output = rerun("process::tests::helper_aborts").output().unwrap();
    let words = describe_status(output.status);
    assert!(words.contains("STATUS_STACK_BUFFER_OVERRUN"), "{words}");
}

#[test]
fn helper_says_its_parent() {
    if is_rerun() {
        println!("parent={}", super::super::job::parent_pid());
    }
}

#[test]
fn a_child_knows_its_parent() {
    let output = rerun("process::tests::helper_says_its_parent")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        marked::<u32>(&text, "parent="),
        Some(std::process::id()),
        "{text}"
    );
}
