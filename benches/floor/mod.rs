//! The raw floor shared by the benchmarks: a bare re-exec of the bench binary that exits at once.

use std::process::{Command, Stdio};

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;

/// Environment variable that makes the bench binary exit as soon as it starts.
const EXIT_AT_ONCE: &str = "SKPROCESS_BENCH_EXIT";

/// Exits at once when this process is the floor's re-exec; call it first in `main`.
pub fn exit_if_floor_child() {
    if std::env::var_os(EXIT_AT_ONCE).is_some() {
        std::process::exit(0);
    }
}

/// Benchmarks spawning this binary and waiting for it to exit, as `bare_reexec_exit`.
pub fn bench_bare_reexec(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function("bare_reexec_exit", |b| {
        b.iter(|| {
            let status = Command::new(std::env::current_exe().unwrap())
                .env(EXIT_AT_ONCE, "1")
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        })
    });
}
