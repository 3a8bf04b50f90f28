//! The cost of supervision, measured in one run:
//!
//! - `checkpoint/*`: 1000 iterations of a small process without checkpoints (`lives = 1`)
//!   and with a checkpoint after every iteration (`lives = 2`); the difference divided by
//!   1000 is the checkpoint cost per iteration.
//! - `restart/*`: from a `SIGKILL` of a supervised child to its replacement running again,
//!   beside a bare re-exec of this binary that exits at once (the floor of any respawn).
//!
//! Run with `cargo bench --bench supervision`.

mod floor;

use std::time::{Duration, Instant};

use criterion::Criterion;
use skprocess::prelude::*;

const ITERATIONS: u64 = 1000;

#[derive(Serialize, Deserialize)]
struct SmallState {
    counters: [u64; 8],
    label: String,
}

#[skprocess(runs = 1000)]
impl SmallState {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.counters[(ctx.current_run() % 8) as usize] += 1;
    }

    fn result(&mut self) -> u64 {
        self.counters.iter().sum()
    }
}

#[derive(Serialize, Deserialize)]
struct Heartbeat;

#[skprocess(runs = None, lives = 1000000, outbox = u32)]
impl Heartbeat {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        ctx.tell(std::process::id())?;
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    }
}

fn main() {
    skprocess::init();
    floor::exit_if_floor_child();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    bench_checkpoint(&mut criterion);
    bench_restart(&mut criterion);
    criterion.final_summary();
}

fn small_state() -> SmallState {
    SmallState {
        counters: [0; 8],
        label: "a small state of a few dozen bytes".into(),
    }
}

fn bench_checkpoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint");
    for (name, lives) in [
        ("1000_runs_no_checkpoint", 1),
        ("1000_runs_checkpoint_each", 2),
    ] {
        let config = SmallState::default_config().lives(lives);
        group.bench_function(name, |b| {
            b.iter(|| {
                let handle = small_state().start_with(config.clone()).unwrap();
                assert_eq!(handle.result().unwrap(), ITERATIONS);
            })
        });
    }
    group.finish();
}

#[cfg(unix)]
fn bench_restart(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart");
    floor::bench_bare_reexec(&mut group);
    let heartbeat = Heartbeat.start().unwrap();
    let mut pid = heartbeat.listen(Duration::from_secs(10)).unwrap().unwrap();
    group.bench_function("sigkill_to_running_again", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let killed_at = Instant::now();
                // SAFETY: sending a signal to a process id has no memory-safety preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                pid = next_pid(&heartbeat, pid);
                total += killed_at.elapsed();
            }
            total
        })
    });
    heartbeat.kill().unwrap();
    group.finish();
}

#[cfg(not(unix))]
fn bench_restart(_c: &mut Criterion) {}

/// Waits for a heartbeat from a child other than `old`.
fn next_pid(heartbeat: &Handle<Heartbeat>, old: u32) -> u32 {
    loop {
        let pid = heartbeat.listen(Duration::from_secs(10)).unwrap().unwrap();
        if pid != old {
            return pid;
        }
    }
}
