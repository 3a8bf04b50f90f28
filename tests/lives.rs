//! One lives budget per process value, wherever it runs: the same `#[skprocess]` type started
//! alone and run as a pool item makes the same attempts, sees the same `lives_left` on each,
//! and ends the same way, whatever mix of crashes, hook timeouts, `Err`s and panics it meets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(240);
/// Every wait on a child is bounded.
const BOUND: Duration = Duration::from_secs(60);

/// What one attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Step {
    /// `abort()`: the process dies.
    Crash,
    /// `run` returns `Err`.
    Fail,
    /// `run` panics.
    Panic,
    /// `run` overruns its 300 ms limit.
    Hang,
    /// `run` succeeds.
    Pass,
}

/// Runs `plan[n]` on its `n`th attempt, counting attempts in a file (the only record a crash
/// cannot wipe), and writes the `lives_left` each attempt saw.
#[derive(Serialize, Deserialize)]
struct Scripted {
    plan: Vec<Step>,
    log: PathBuf,
}

#[skprocess(runs = 1, lives = 3, timeout(run = "300ms"))]
impl Scripted {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), String> {
        let attempt = attempts(&self.log).len();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        writeln!(log, "{}", ctx.lives_left()).map_err(|e| e.to_string())?;
        drop(log);
        match self.plan.get(attempt).copied().unwrap_or(Step::Pass) {
            Step::Crash => std::process::abort(),
            Step::Fail => Err(format!("attempt {attempt} fails")),
            Step::Panic => panic!("attempt {attempt} panics"),
            Step::Hang => {
                std::thread::sleep(Duration::from_secs(20));
                Ok(())
            }
            Step::Pass => Ok(()),
        }
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> u32 {
        ctx.lives_left()
    }
}

/// The `lives_left` each attempt saw, in order.
fn attempts(log: &Path) -> Vec<u32> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

/// How a run ended, in words both ways of running share.
fn ending(outcome: Result<u32, Error>) -> String {
    let error = match outcome {
        Ok(lives_left) => return format!("finished with {lives_left} lives left"),
        Err(Error::Item { error, .. }) => *error,
        Err(error) => error,
    };
    match error {
        Error::Crashed { .. } => "crashed".into(),
        Error::Timeout { .. } => "timed out".into(),
        Error::Hook { kind, .. } => format!("hook {kind:?}"),
        other => format!("unexpected: {other}"),
    }
}

/// A fresh log file path for one run.
fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skprocess-lives-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs `plan` alone and in a pool; both must make the same attempts and end the same way.
fn same_alone_and_in_a_pool(plan: &[Step], expected: (&[u32], &str)) {
    let tag = format!("{plan:?}").replace([' ', ',', '[', ']'], "");
    let alone_log = log_path(&format!("{tag}-alone"));
    let handle = Scripted {
        plan: plan.to_vec(),
        log: alone_log.clone(),
    }
    .start()
    .unwrap();
    assert!(handle.wait(BOUND), "{plan:?} alone did not end");
    let status = handle.status();
    let alone = ending(handle.result_timeout(BOUND));

    let pool_log = log_path(&format!("{tag}-pool"));
    let pool = Pool::new(1).unwrap();
    let item = Scripted {
        plan: plan.to_vec(),
        log: pool_log.clone(),
    };
    let mut outputs = pool.timeout(BOUND).map_processes([item]).map_or_else(
        |e| vec![Err(e)],
        |outputs| outputs.into_iter().map(Ok).collect(),
    );
    let pooled = ending(outputs.pop().unwrap());

    let (lives_seen, end) = expected;
    assert_eq!(
        (attempts(&alone_log).as_slice(), alone.as_str()),
        (lives_seen, end),
        "{plan:?} alone"
    );
    assert_eq!(
        (attempts(&pool_log).as_slice(), pooled.as_str()),
        (lives_seen, end),
        "{plan:?} in a pool"
    );
    // The handle's status agrees with what the child counted, after any kind of failure: a
    // success keeps the last attempt's life, a final failure of any kind spends it.
    let left_at_end = match end.starts_with("finished") {
        true => lives_seen.last().copied().unwrap_or(3),
        false => 0,
    };
    assert_eq!(status.lives_left, left_at_end, "{plan:?} status");
}

#[test]
fn a_crash_then_errors_spend_one_budget_alone_and_in_a_pool() {
    let _bound = bound::within(TEST_BOUND);
    same_alone_and_in_a_pool(
        &[Step::Crash, Step::Fail, Step::Fail],
        (&[3, 2, 1], "hook Returned"),
    );
    same_alone_and_in_a_pool(
        &[Step::Crash, Step::Fail, Step::Pass],
        (&[3, 2, 1], "finished with 1 lives left"),
    );
}

#[test]
fn an_error_then_a_crash_spend_one_budget_alone_and_in_a_pool() {
    let _bound = bound::within(TEST_BOUND);
    same_alone_and_in_a_pool(
        &[Step::Fail, Step::Panic, Step::Crash],
        (&[3, 2, 1], "crashed"),
    );
    same_alone_and_in_a_pool(
        &[Step::Panic, Step::Crash, Step::Pass],
        (&[3, 2, 1], "finished with 1 lives left"),
    );
}

#[test]
fn a_hook_timeout_spends_a_life_alone_and_in_a_pool() {
    let _bound = bound::within(TEST_BOUND);
    same_alone_and_in_a_pool(
        &[Step::Hang, Step::Fail, Step::Pass],
        (&[3, 2, 1], "finished with 1 lives left"),
    );
    same_alone_and_in_a_pool(
        &[Step::Fail, Step::Crash, Step::Hang],
        (&[3, 2, 1], "timed out"),
    );
}

#[test]
fn a_thread_pool_item_spends_the_same_budget_as_a_process() {
    let _bound = bound::within(TEST_BOUND);
    // No `Crash` here: it would end this test process.
    for (plan, lives_seen, end) in [
        (
            &[Step::Hang, Step::Fail, Step::Pass][..],
            &[3, 2, 1][..],
            "finished with 1 lives left",
        ),
        (
            &[Step::Fail, Step::Panic, Step::Fail][..],
            &[3, 2, 1][..],
            "hook Returned",
        ),
    ] {
        let tag = format!("{plan:?}").replace([' ', ',', '[', ']'], "");
        let log = log_path(&format!("{tag}-threads"));
        let pool = Pool::threads(1).unwrap();
        let item = Scripted {
            plan: plan.to_vec(),
            log: log.clone(),
        };
        let outcome = pool
            .timeout(BOUND)
            .map_processes([item])
            .map(|mut outputs| outputs.pop().unwrap());
        assert_eq!(
            (attempts(&log).as_slice(), ending(outcome).as_str()),
            (lives_seen, end),
            "{plan:?} on a thread"
        );
    }
}
