skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// Every process type of the library, plus types defined in this file and in a module of it,
// started from an integration test exactly as an outside user would.

use std::time::Duration;

use skprocess::prelude::*;
use skprocess_user_crate::jobs::nested::Summer;
use skprocess_user_crate::jobs::{Tally, WordCounter};
use skprocess_user_crate::{
    Answer, Calculator, Doubler, Op, Phoenix, Recovery, start_tell_and_wait,
};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_type_at_the_library_root_runs_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Doubler { value: 5 }.start().unwrap();
    assert_eq!(handle.result_timeout(LIMIT).unwrap(), 40);
}

#[test]
fn a_library_type_takes_a_per_instance_config() {
    let _bound = bound::within(TEST_BOUND);
    let config = Doubler::default_config().runs(10);
    let handle = Doubler { value: 1 }.start_with(config).unwrap();
    assert_eq!(handle.result_timeout(LIMIT).unwrap(), 1024);
}

#[test]
fn a_type_in_a_nested_library_module_runs_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Summer::new(100).start().unwrap();
    // The iteration that stopped itself is cut short and not counted (spec SKP-E04).
    assert_eq!(handle.result_timeout(LIMIT).unwrap(), (5050, 99));
}

#[test]
fn a_library_type_returns_a_library_struct() {
    let _bound = bound::within(TEST_BOUND);
    let counter = WordCounter::new(&["the quick brown fox", "", "jumps over", "the lazy dog"]);
    let config = counter.config();
    let tally = counter
        .start_with(config)
        .unwrap()
        .result_timeout(LIMIT)
        .unwrap();
    assert_eq!(
        tally,
        Tally {
            words: 9,
            per_line: vec![4, 0, 2, 3],
            longest: "quick".into(),
        }
    );
}

#[test]
fn a_library_type_exchanges_typed_messages() {
    let _bound = bound::within(TEST_BOUND);
    let calculator = Calculator::default().start().unwrap();
    let ops = [Op::Add(2, 3), Op::Mul(-4, 6), Op::Add(i64::MAX - 1, 1)];
    let mut answers = Vec::new();
    for op in ops {
        calculator.tell(op).unwrap();
        answers.push(calculator.listen(LIMIT).unwrap().expect("an answer"));
    }
    assert_eq!(
        answers,
        [
            Answer { seq: 0, value: 5 },
            Answer { seq: 1, value: -24 },
            Answer {
                seq: 2,
                value: i64::MAX
            },
        ]
    );
    calculator.tell(Op::Quit).unwrap();
    assert!(calculator.wait(Some(LIMIT)));
    assert!(matches!(
        calculator.listen(Duration::from_millis(10)),
        Err(Error::Disconnected)
    ));
    assert_eq!(calculator.result_timeout(LIMIT).unwrap(), 3);
}

#[test]
fn a_library_type_survives_an_abort_and_a_timeout() {
    let _bound = bound::within(TEST_BOUND);
    let phoenix = Phoenix::new(true, true);
    let handle = phoenix.start().unwrap();
    assert!(handle.wait(Some(LIMIT)));
    let status = handle.status();
    assert_eq!((status.restarts, status.completed_runs), (2, 3));
    assert_eq!(status.lives_left, 1);
    let Recovery { completed, pids } = handle.result_timeout(LIMIT).unwrap();
    assert_eq!(completed, [0, 1, 2]);
    // Run 0 was redone by the second child; runs 1 and 2 by the third.
    assert_eq!(pids.len(), 3);
    assert_ne!(pids[0], pids[1]);
    assert_eq!(pids[1], pids[2]);
}

#[test]
fn a_library_type_without_failures_keeps_its_lives() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Phoenix::default().start().unwrap();
    assert!(handle.wait(Some(LIMIT)));
    let status = handle.status();
    assert_eq!((status.restarts, status.lives_left), (0, 3));
    let recovery = handle.result_timeout(LIMIT).unwrap();
    assert_eq!(recovery.completed, [0, 1, 2]);
    assert!(recovery.pids.iter().all(|&pid| pid == recovery.pids[0]));
}

#[test]
fn a_library_type_out_of_lives_reports_the_crash() {
    let _bound = bound::within(TEST_BOUND);
    let config = Phoenix::default_config().lives(1);
    let phoenix = Phoenix::new(true, false);
    let error = phoenix
        .start_with(config)
        .unwrap()
        .result_timeout(LIMIT)
        .unwrap_err();
    assert!(matches!(&error, Error::Crashed { run: 0, .. }), "{error:?}");
    assert!(error.to_string().contains("SIGABRT"), "{error}");
}

/// A type defined in the test file itself.
#[derive(Serialize, Deserialize)]
struct LocalConcat {
    parts: Vec<String>,
    joined: String,
}

#[skprocess(runs = 3)]
impl LocalConcat {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        let part = &self.parts[ctx.current_run() as usize];
        self.joined.push_str(part);
    }

    fn result(&mut self) -> String {
        std::mem::take(&mut self.joined)
    }
}

#[test]
fn a_type_defined_in_the_test_file_runs_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let local = LocalConcat {
        parts: vec!["sk".into(), "pro".into(), "cess".into()],
        joined: String::new(),
    };
    let handle = local.start().unwrap();
    assert_eq!(handle.result_timeout(LIMIT).unwrap(), "skprocess");
}

mod inner {
    pub mod deeper {
        use skprocess::prelude::*;

        /// A type defined in a module of the test file, which uses a library type in its hook.
        #[derive(Serialize, Deserialize)]
        pub struct ModuleLocal {
            pub factor: u64,
        }

        #[skprocess]
        impl ModuleLocal {
            fn run(&mut self) {
                self.factor *= skprocess_user_crate::jobs::nested::Summer::new(1).upto + 1;
            }

            fn result(&mut self) -> (u64, u32) {
                (self.factor, std::process::id())
            }
        }
    }
}

#[test]
fn a_type_defined_in_a_module_of_the_test_file_runs_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let handle = inner::deeper::ModuleLocal { factor: 21 }.start().unwrap();
    let (value, pid) = handle.result_timeout(LIMIT).unwrap();
    assert_eq!(value, 42);
    assert_ne!(pid, std::process::id());
}

#[test]
fn code_generic_over_process_starts_any_type() {
    let _bound = bound::within(TEST_BOUND);
    let output = start_tell_and_wait(Doubler { value: 5 }, Vec::new(), LIMIT).unwrap();
    assert_eq!(output, 40);
}
