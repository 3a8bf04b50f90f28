//! The cost of supervision, measured in one run:
//!
//! - `checkpoint/*`: 1000 iterations of a small process without checkpoints (`lives = 1`)
//!   and with a checkpoint after every iteration (`lives = 2`); the difference divided by
//!   1000 is the checkpoint cost per iteration.
//! - `restart/*`: from a `SIGKILL` (`TerminateProcess` on Windows) of a supervised child to
//!   its replacement running again (its first `tell` read by `listen`), beside a bare re-exec
//!   of this binary that exits at once (the floor of any respawn), and a raw respawn:
//!   `SIGKILL` a re-executed child connected over a socket, reap it, re-execute it and read
//!   its hello on the socket.
//!
//! Run with `cargo bench --bench supervision`.

mod floor;

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use floor::Role;
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

/// Announces each child once: `announced` is not part of the state, so a replacement child,
/// which resumes from the last checkpoint, starts with it unset.
#[derive(Serialize, Deserialize)]
struct Heartbeat {
    #[serde(skip)]
    announced: bool,
}

#[skprocess(runs = None, lives = 1000000, outbox = u32)]
impl Heartbeat {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        if !self.announced {
            ctx.tell(std::process::id())?;
            self.announced = true;
        }
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(20);
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

fn bench_restart(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart");
    floor::bench_bare_reexec(&mut group);
    bench_raw_respawn(&mut group);
    let heartbeat = Heartbeat { announced: false }.start().unwrap();
    let mut pid = heartbeat
        .listen_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    group.bench_function("skprocess_sigkill_to_running_again", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let killed_at = Instant::now();
                kill(pid);
                let next = heartbeat
                    .listen_timeout(Duration::from_secs(10))
                    .unwrap()
                    .unwrap();
                total += killed_at.elapsed();
                assert_ne!(next, pid);
                pid = next;
            }
            total
        })
    });
    heartbeat.kill().unwrap();
    group.finish();
}

/// The floor of a restart: `SIGKILL` a re-executed child connected over a socket, reap it,
/// re-execute a replacement and wait for its hello on the socket.
fn bench_raw_respawn(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (listener, mut stream, mut child) = floor::connect(Role::Hello);
    floor::read_hello(&mut stream);
    group.bench_function("raw_sigkill_to_hello", |b| {
        b.iter(|| {
            kill(child.id());
            child.wait().unwrap();
            child = floor::reexec(Role::Hello, Some(&listener));
            stream = listener.accept();
            assert_eq!(floor::read_hello(&mut stream), child.id());
        })
    });
    kill(child.id());
    child.wait().unwrap();
}

#[cfg(unix)]
fn kill(pid: u32) {
    // SAFETY: sending a signal to a process id has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// Windows has no `SIGKILL`: `TerminateProcess`, as skprocess's own kill.
#[cfg(windows)]
fn kill(pid: u32) {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};
    // SAFETY: opens, terminates and closes a handle this function owns alone.
    unsafe {
        let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
        assert!(!process.is_null(), "open process {pid} to terminate it");
        TerminateProcess(process, 1);
        CloseHandle(process);
    }
}
