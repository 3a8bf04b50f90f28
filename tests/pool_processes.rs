//! `#[skprocess]` types as pool items (SCN-15, E15, POOL-M05, POOL-I01…I04): each item's
//! whole lifecycle runs in a worker, and its `result` is the item's output.

use std::time::Duration;

use skprocess::prelude::*;
use skprocess::{FailureKind, Hook};

skprocess::test_support!();

#[path = "support/pid.rs"]
mod pid;

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    value: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Transformed {
    id: u64,
    doubled: u64,
    squared: u64,
}

#[derive(Serialize, Deserialize)]
struct DataTransformer {
    record: Record,
    doubled: u64,
    squared: u64,
}

impl From<Record> for DataTransformer {
    fn from(record: Record) -> Self {
        Self {
            record,
            doubled: 0,
            squared: 0,
        }
    }
}

#[skprocess]
impl DataTransformer {
    fn run(&mut self) {
        self.doubled = self.record.value * 2;
        self.squared = self.record.value * self.record.value;
    }

    fn result(&mut self) -> Transformed {
        Transformed {
            id: self.record.id,
            doubled: self.doubled,
            squared: self.squared,
        }
    }
}

#[test]
fn scn15_e15_data_transformer_items_give_doubled_and_squared_values() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let records = (1..=4).map(|id| Record { id, value: id * 10 });
    let outputs = pool
        .map_processes(records.map(DataTransformer::from))
        .unwrap();
    let doubled: Vec<u64> = outputs.iter().map(|t| t.doubled).collect();
    let squared: Vec<u64> = outputs.iter().map(|t| t.squared).collect();
    let ids: Vec<u64> = outputs.iter().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(doubled, [20, 40, 60, 80]);
    assert_eq!(squared, [100, 400, 900, 1600]);
}

#[derive(Serialize, Deserialize)]
struct AddProcess {
    a: u64,
    b: u64,
}

#[skprocess]
impl AddProcess {
    fn run(&mut self) {}

    fn result(&mut self) -> u64 {
        self.a + self.b
    }
}

#[derive(Serialize, Deserialize)]
struct DoubleProcess(u64);

#[skprocess]
impl DoubleProcess {
    fn run(&mut self) {
        self.0 *= 2;
    }

    fn result(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn scn15_scn14_add_and_double_processes_give_the_specs_values() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let pairs = [(1, 2), (3, 4), (5, 6)];
    let sums = pool
        .map_processes(pairs.map(|(a, b)| AddProcess { a, b }))
        .unwrap();
    assert_eq!(sums, [3, 7, 11]);
    let doubled = pool.map_processes((0..100).map(DoubleProcess)).unwrap();
    assert_eq!(doubled, (0..100).map(|i| 2 * i).collect::<Vec<_>>());
}

/// Runs three times, stops itself at run 2, and fails its first attempt (lives retry it).
#[derive(Serialize, Deserialize)]
struct Counter {
    runs: Vec<u64>,
}

#[skprocess(runs = 5, lives = 2)]
impl Counter {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), String> {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            return Err("first try of run 1 fails".into());
        }
        self.runs.push(ctx.current_run());
        if ctx.current_run() == 2 {
            ctx.stop();
        }
        Ok(())
    }

    fn result(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.runs)
    }
}

#[test]
fn runs_lives_and_stop_behave_as_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let outputs = pool
        .map_processes([Counter { runs: vec![] }, Counter { runs: vec![] }])
        .unwrap();
    assert_eq!(outputs, [vec![0, 1, 2], vec![0, 1, 2]]);
}

/// Fails its run; its `error` hook turns the failure into an output, or not.
#[derive(Serialize, Deserialize)]
struct Recovers {
    recover: bool,
}

#[skprocess]
impl Recovers {
    fn run(&mut self) -> Result<(), String> {
        Err("run failed".into())
    }

    fn result(&mut self) -> String {
        "unreachable".into()
    }

    fn error(&mut self, error: &Error) -> Result<String, String> {
        if self.recover {
            Ok(format!("recovered from: {error}"))
        } else {
            Err("the error hook gives up".into())
        }
    }
}

#[test]
fn the_error_hook_turns_a_failure_into_an_output_or_the_original_error_stands() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let outcomes: Vec<_> = pool
        .imap_processes([Recovers { recover: true }, Recovers { recover: false }])
        .collect();
    assert_eq!(
        outcomes[0].as_ref().unwrap(),
        "recovered from: `run` hook failed on run 0: run failed"
    );
    match outcomes[1].as_ref().unwrap_err() {
        Error::Item { index: 1, error } => assert!(
            matches!(&**error, Error::Hook { hook: Hook::Run, run: 0, kind: FailureKind::Returned, message, .. } if message == "run failed"),
            "{error:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[derive(Serialize, Deserialize)]
struct Talker;

#[skprocess(outbox = u64)]
impl Talker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        ctx.tell(1)
    }
}

#[test]
fn tell_in_a_pool_item_fails_with_no_parent_link() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let error = pool.map_processes([Talker]).unwrap_err();
    match error {
        Error::Item { index: 0, error } => assert!(
            matches!(&*error, Error::Hook { hook: Hook::Run, message, .. } if message == &Error::NoParentLink.to_string()),
            "{error:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[derive(Serialize, Deserialize)]
struct Hangs(u64);

#[skprocess(timeout(run = "100ms"))]
impl Hangs {
    fn run(&mut self) {
        if self.0 == 1 {
            std::thread::sleep(Duration::from_secs(20));
        }
    }

    fn result(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn a_hook_timeout_fails_its_item_with_the_hook_and_the_worker_is_replaced() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let outcomes: Vec<_> = pool
        .imap_processes([Hangs(0), Hangs(1), Hangs(2)])
        .collect();
    assert_eq!(outcomes[0].as_ref().unwrap(), &0);
    match outcomes[1].as_ref().unwrap_err() {
        Error::Item { index: 1, error } => assert!(
            matches!(
                **error,
                Error::Timeout {
                    hook: Hook::Run,
                    run: 0,
                    ..
                }
            ),
            "{error:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcomes[2].as_ref().unwrap(), &2);
}

/// Kills its own worker on its first attempt (it leaves a marker file first), succeeds on the
/// second: a crash costs the item a life and the item runs again in another worker.
#[derive(Serialize, Deserialize)]
struct CrashesOnce {
    marker: std::path::PathBuf,
}

#[skprocess(lives = 2)]
impl CrashesOnce {
    fn run(&mut self) {
        if !self.marker.exists() {
            std::fs::write(&self.marker, b"crashed once").unwrap();
            // Long enough for the worker to report this item running, so the crash is pinned
            // on it (and costs a life) rather than requeued as a suspect.
            std::thread::sleep(Duration::from_millis(100));
            pid::kill(std::process::id());
        }
    }

    fn result(&mut self) -> String {
        "second life".into()
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_crash_costs_a_process_item_a_life_and_it_runs_again() {
    let _bound = bound::within(TEST_BOUND);
    let marker =
        std::env::temp_dir().join(format!("skprocess-crashes-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let pool = Pool::new(1).unwrap();
    let outputs = pool
        .map_processes([CrashesOnce {
            marker: marker.clone(),
        }])
        .unwrap();
    assert_eq!(outputs, ["second life"]);
    let _ = std::fs::remove_file(&marker);
}
