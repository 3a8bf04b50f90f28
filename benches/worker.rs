//! Workers, measured beside their floors in one run:
//!
//! - `resource_round_trip/*`: `WorkerResource::execute` of a trivial function on a `u64`,
//!   beside a raw ping-pong of 16-byte frames with a re-executed echo child over a bare
//!   `UnixStream`. Neither side spins: every read of both blocks in the kernel (as the
//!   resource's caller and worker do). The `*_pinned` rows run the bench, its threads and its
//!   children on one CPU (Linux).
//! - `run_startup/*`: `run` of a trivial function and `join`, beside a bare re-exec of this
//!   binary that exits at once.
//!
//! Run with `cargo bench --bench worker`.

// The workers need only the echo and the bare re-exec of the floors.
#[allow(dead_code)]
mod floor;

use std::io::{Read, Write};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use floor::Role;
use skprocess::WorkerResource;

fn increment(x: u64) -> u64 {
    x + 1
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(20);
    bench_round_trip(&mut criterion);
    bench_run_startup(&mut criterion);
    criterion.final_summary();
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("resource_round_trip");
    round_trip_rows(&mut group, "");
    floor::on_one_cpu(|| round_trip_rows(&mut group, "_pinned"));
    group.finish();
}

/// `execute` beside the raw ping-pong, each row's name ending in `suffix`.
fn round_trip_rows(group: &mut BenchmarkGroup<'_, WallTime>, suffix: &str) {
    let mut worker = WorkerResource::new(increment).expect("start the worker");
    let mut x = 0u64;
    group.bench_function(format!("execute{suffix}"), |b| {
        b.iter(|| {
            x = worker.execute(x).expect("execute");
        })
    });
    let (_listener, mut stream, mut child) = floor::connect(Role::Echo);
    let mut frame = [0u8; floor::child::ECHO_FRAME];
    group.bench_function(format!("raw_socket_ping_pong{suffix}"), |b| {
        b.iter(|| {
            stream.write_all(&frame).expect("write");
            stream.read_exact(&mut frame).expect("read");
        })
    });
    drop(stream);
    let _ = child.wait();
}

fn bench_run_startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("run_startup");
    group.bench_function("run_join", |b| {
        b.iter(|| {
            skprocess::run(increment as fn(u64) -> u64, (1,))
                .expect("run")
                .join()
                .expect("join")
        })
    });
    floor::bench_bare_reexec(&mut group);
    group.finish();
}
