//! README's first command, `cargo run --example quickstart`, runs the headline: four worker
//! processes in a pool update a shared counter and a shared list and log to the parent. Its
//! standard output is compared exactly with `.ci/quickstart.stdout` (the text README and the
//! example promise), and its log records — one per item, from the workers — are checked on
//! standard error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example builds and runs within this, or the test fails naming it.
const BOUND: Duration = Duration::from_secs(600);

#[test]
fn readmes_first_command_prints_the_headline() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = example_or_cargo_run(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let deadline = Instant::now() + BOUND;
    while child.try_wait().expect("cargo can be waited for").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`cargo run --example quickstart` did not finish in {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the output is read");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    let expected = std::fs::read_to_string(format!("{root}/.ci/quickstart.stdout")).unwrap();
    assert_eq!(stdout, expected);
    // One `done` record per item, each from a worker process, each result once.
    let mut results: Vec<u64> = stderr
        .lines()
        .filter(|line| line.contains("skprocess::child: done") && line.contains(" pid="))
        .filter_map(|line| line.split("result=").nth(1))
        .filter_map(|rest| rest.trim_end_matches('"').parse().ok())
        .collect();
    results.sort_unstable();
    assert_eq!(
        results,
        (0..20).map(|item| item * 2).collect::<Vec<_>>(),
        "{stderr}"
    );
}

/// The example binary `cargo test` built beside this test (`target/<profile>/examples/`), so
/// the check does not rebuild the dependencies with the facade's own feature set; `cargo run`
/// when it is not there (a filtered build).
fn example_or_cargo_run(root: &str) -> Command {
    let built = std::env::current_exe().ok().and_then(|exe| {
        let profile = exe.parent()?.parent()?;
        let name = format!("quickstart{}", std::env::consts::EXE_SUFFIX);
        Some(profile.join("examples").join(name))
    });
    match built {
        Some(path) if path.is_file() => {
            let mut command = Command::new(path);
            command.current_dir(root);
            command
        }
        _ => {
            let mut command = Command::new(env!("CARGO"));
            command
                .args(["run", "--quiet", "--example", "quickstart"])
                .current_dir(root);
            command
        }
    }
}
