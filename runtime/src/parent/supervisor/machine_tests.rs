//! The supervisor's decisions, with plain values: no process, no socket, no clock.

use super::*;
use crate::error::{FailureKind, FailureReport};

const LIMIT: Duration = Duration::from_millis(100);

fn sigkill() -> Exit {
    Exit::Status(crate::sys::exit_status_killed())
}

fn exit_code(code: i32) -> Exit {
    Exit::Status(crate::sys::exit_status_from_code(code))
}

/// How the platform says a killed child ended: `killed by signal 9 (SIGKILL)` on Unix,
/// `killed (TerminateProcess, …)` on Windows.
fn killed_in_words() -> String {
    sigkill().describe()
}

fn ended(exit: Exit, at: Instant) -> Event {
    Event::Ended { exit, at }
}

fn hook_started(started: Instant) -> Event {
    Event::Report(Report::HookStarted {
        hook: Hook::Run,
        limit: LIMIT,
        run: 2,
        started,
    })
}

fn run_timeout() -> Failure {
    Failure::Timeout {
        hook: Hook::Run,
        limit: LIMIT,
        run: 2,
    }
}

fn restart_of(action: Option<Action>) -> Restart {
    match action {
        Some(Action::Restart(restart)) => restart,
        other => panic!("expected a restart, got {other:?}"),
    }
}

fn delivered(action: Option<Action>) -> Outcome {
    match action {
        Some(Action::Deliver(outcome)) => outcome,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[test]
fn a_crash_with_lives_left_restarts_from_the_last_checkpoint() {
    let mut s = Supervisor::new(3, false);
    s.handle(Event::Report(Report::Checkpoint { completed_runs: 4 }));
    s.handle(Event::Report(Report::Progress {
        completed_runs: 5,
        lives_left: 3,
    }));
    let restart = restart_of(s.handle(ended(sigkill(), Instant::now())));
    assert_eq!(
        restart,
        Restart {
            completed_runs: 4,
            lives_left: 2,
            pending: None
        }
    );
    assert_eq!(s.restarts(), 1);
}

#[test]
fn a_crash_on_the_last_life_is_final_and_names_the_signal() {
    let mut s = Supervisor::new(1, false);
    let outcome = delivered(s.handle(ended(sigkill(), Instant::now())));
    let Outcome::Failed(Failure::Crashed { status, run: 0 }) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(status, killed_in_words());
    #[cfg(unix)]
    assert_eq!(status, "killed by signal 9 (SIGKILL)");
    assert!(s.is_over());
    assert!(s.handle(ended(sigkill(), Instant::now())).is_none());
}

#[test]
fn lives_spent_inside_the_child_count_toward_the_budget() {
    let mut s = Supervisor::new(3, false);
    s.handle(Event::Report(Report::Progress {
        completed_runs: 0,
        lives_left: 1,
    }));
    let outcome = delivered(s.handle(ended(sigkill(), Instant::now())));
    assert!(matches!(outcome, Outcome::Failed(Failure::Crashed { .. })));
}

#[test]
fn a_final_crash_spends_the_last_life_as_a_final_error_does_in_the_child() {
    let mut s = Supervisor::new(2, false);
    restart_of(s.handle(ended(sigkill(), Instant::now())));
    assert_eq!(s.lives_left(), 1);
    delivered(s.handle(ended(sigkill(), Instant::now())));
    assert_eq!(s.lives_left(), 0);

    let mut s = Supervisor::new(1, true);
    let handover = restart_of(s.handle(ended(sigkill(), Instant::now())));
    assert_eq!((handover.lives_left, handover.pending.is_some()), (0, true));
}

#[test]
fn a_crash_after_finishing_began_is_not_retried() {
    let mut s = Supervisor::new(3, false);
    s.handle(Event::Report(Report::Finishing));
    let outcome = delivered(s.handle(ended(sigkill(), Instant::now())));
    assert!(matches!(outcome, Outcome::Failed(Failure::Crashed { .. })));
}

#[test]
fn a_final_crash_goes_to_the_error_hook_once() {
    let mut s = Supervisor::new(1, true);
    let restart = restart_of(s.handle(ended(sigkill(), Instant::now())));
    assert!(matches!(restart.pending, Some(Failure::Crashed { .. })));
    let outcome = delivered(s.handle(ended(exit_code(3), Instant::now())));
    let Outcome::Failed(Failure::Crashed { status, .. }) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(status, killed_in_words(), "the original failure stands");
}

#[test]
fn the_error_hook_child_delivers_what_it_reports() {
    let mut s = Supervisor::new(1, true);
    restart_of(s.handle(ended(sigkill(), Instant::now())));
    let outcome = delivered(s.handle(Event::Report(Report::Finished)));
    assert!(matches!(outcome, Outcome::Finished));
}

#[test]
fn a_reported_timeout_is_a_timeout_whatever_the_exit_status() {
    let mut s = Supervisor::new(1, false);
    let start = Instant::now();
    s.handle(hook_started(start));
    s.handle(Event::Report(Report::TimedOut {
        hook: Hook::Run,
        limit: LIMIT,
        run: 2,
    }));
    let outcome = delivered(s.handle(ended(exit_code(1), start + LIMIT)));
    assert!(matches!(outcome, Outcome::Failed(f) if f == run_timeout()));
}

#[test]
fn an_overrun_without_a_report_is_still_a_timeout() {
    let mut s = Supervisor::new(1, false);
    let start = Instant::now();
    s.handle(hook_started(start));
    let outcome = delivered(s.handle(ended(exit_code(72), start + LIMIT)));
    assert!(matches!(outcome, Outcome::Failed(f) if f == run_timeout()));
}

#[test]
fn a_user_exit_before_the_limit_is_a_crash_even_with_our_exit_codes() {
    for code in [70, 71, 72, 97] {
        let mut s = Supervisor::new(1, false);
        let start = Instant::now();
        s.handle(hook_started(start));
        let outcome = delivered(s.handle(ended(exit_code(code), start + LIMIT / 2)));
        let Outcome::Failed(Failure::Crashed { status, .. }) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(status, format!("exited with code {code}"));
    }
}

#[test]
fn a_hook_that_ended_in_time_is_not_a_timeout() {
    let mut s = Supervisor::new(1, false);
    let start = Instant::now();
    s.handle(hook_started(start));
    s.handle(Event::Report(Report::HookEnded));
    let outcome = delivered(s.handle(ended(sigkill(), start + 2 * LIMIT)));
    assert!(matches!(outcome, Outcome::Failed(Failure::Crashed { .. })));
}

#[test]
fn the_backstop_kills_once_after_the_grace_and_reports_a_timeout() {
    let mut s = Supervisor::new(2, false);
    let start = Instant::now();
    s.handle(hook_started(start));
    assert_eq!(s.next_deadline(), Some(start + LIMIT + BACKSTOP_GRACE));
    assert!(s.handle(Event::Tick(start + LIMIT)).is_none());
    let action = s.handle(Event::Tick(start + LIMIT + BACKSTOP_GRACE));
    assert!(matches!(action, Some(Action::KillChild)));
    assert!(
        s.handle(Event::Tick(start + 3 * LIMIT)).is_none(),
        "fired twice"
    );
    assert_eq!(s.next_deadline(), None);
    let restart = restart_of(s.handle(ended(sigkill(), start + 3 * LIMIT)));
    assert_eq!(restart.lives_left, 1);
}

#[test]
fn a_limit_too_large_for_the_clock_never_expires() {
    let mut s = Supervisor::new(1, false);
    s.handle(Event::Report(Report::HookStarted {
        hook: Hook::Run,
        limit: Duration::MAX,
        run: 0,
        started: Instant::now(),
    }));
    assert_eq!(s.next_deadline(), None);
    let outcome = delivered(s.handle(ended(sigkill(), Instant::now())));
    assert!(matches!(outcome, Outcome::Failed(Failure::Crashed { .. })));
}

/// Brings a supervisor into some state.
type Setup = dyn Fn(&mut Supervisor);

#[test]
fn kill_is_final_in_every_state() {
    let start = Instant::now();
    let setups: Vec<Box<Setup>> = vec![
        Box::new(|_| {}),
        Box::new(move |s| {
            s.handle(hook_started(start));
        }),
        Box::new(|s| {
            restart_of(s.handle(ended(sigkill(), Instant::now())));
        }),
        Box::new(|s| {
            s.handle(Event::Report(Report::Finishing));
        }),
    ];
    for setup in setups {
        let mut s = Supervisor::new(3, true);
        setup(&mut s);
        assert!(matches!(
            delivered(s.handle(Event::KillRequested)),
            Outcome::Killed
        ));
        for event in [
            ended(sigkill(), Instant::now()),
            Event::Tick(start + 10 * LIMIT),
            Event::Report(Report::Finished),
        ] {
            assert!(s.handle(event).is_none(), "acted after a kill");
        }
    }
}

#[test]
fn nothing_follows_a_delivered_outcome() {
    let mut s = Supervisor::new(3, true);
    let failure = Failure::Hook(FailureReport {
        hook: Hook::Result,
        run: 1,
        kind: FailureKind::Returned,
        message: "no".into(),
        location: None,
        backtrace: None,
    });
    let outcome = delivered(s.handle(Event::Report(Report::Failed(failure.clone()))));
    assert!(matches!(outcome, Outcome::Failed(f) if f == failure));
    assert!(s.handle(ended(sigkill(), Instant::now())).is_none());
    assert!(s.handle(Event::KillRequested).is_none());
}

#[test]
fn a_failed_restart_is_delivered_as_its_error() {
    let mut s = Supervisor::new(2, false);
    restart_of(s.handle(ended(sigkill(), Instant::now())));
    let outcome = delivered(s.handle(Event::SpawnFailed(Error::Bootstrap {
        detail: "gone".into(),
    })));
    assert!(matches!(outcome, Outcome::Error(Error::Bootstrap { .. })));
}

#[test]
fn a_protocol_violation_is_a_crash_that_costs_a_life() {
    let mut s = Supervisor::new(2, false);
    let exit = Exit::Protocol("bad frame".into());
    let restart = restart_of(s.handle(ended(exit, Instant::now())));
    assert_eq!(restart.lives_left, 1);
}

#[test]
fn an_error_hook_that_dies_in_the_same_child_keeps_the_failure_it_handled() {
    let original = Failure::Hook(FailureReport {
        hook: Hook::Run,
        run: 0,
        kind: FailureKind::Returned,
        message: "die errs".into(),
        location: None,
        backtrace: None,
    });
    for exit in [sigkill(), exit_code(3)] {
        let mut s = Supervisor::new(1, true);
        s.handle(Event::Report(Report::HandlingError(original.clone())));
        let outcome = delivered(s.handle(ended(exit, Instant::now())));
        assert!(
            matches!(&outcome, Outcome::Failed(f) if *f == original),
            "{outcome:?}"
        );
    }
}

#[test]
fn a_frozen_error_hook_ended_by_the_backstop_keeps_the_failure_it_handled() {
    let original = run_timeout();
    let mut s = Supervisor::new(1, true);
    let start = Instant::now();
    s.handle(Event::Report(Report::HandlingError(original.clone())));
    s.handle(Event::Report(Report::HookStarted {
        hook: Hook::Error,
        limit: LIMIT,
        run: 0,
        started: start,
    }));
    let kill = s.handle(Event::Tick(start + LIMIT + BACKSTOP_GRACE));
    assert!(matches!(kill, Some(Action::KillChild)));
    let outcome = delivered(s.handle(ended(sigkill(), start + 2 * LIMIT + BACKSTOP_GRACE)));
    assert!(
        matches!(&outcome, Outcome::Failed(f) if *f == original),
        "{outcome:?}"
    );
}
