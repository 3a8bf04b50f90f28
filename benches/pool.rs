//! The pool, measured beside its floors in one run:
//!
//! - `tiny_10k/*`: 10,000 items of `x * 2` on 2 workers, beside rayon's `par_iter().map()` on
//!   2 threads (the in-process floor), a single-threaded loop, and the raw floor of moving the
//!   items through two processes: two re-executed echo processes, each sent half the items as
//!   16-byte frames, [`RAW_CHUNK`] frames per `write`, and read back (over a Unix socket; a
//!   bare named pipe on Windows).
//! - `cpu_200x5ms/*`: 200 items of about 5 ms of CPU each on 2 workers, beside the same work
//!   in one thread (the ideal 2-core time is half of it) and on 2 rayon threads (what 2 cores
//!   of this machine give at best in the same run).
//! - `processes_1000/*`: 1,000 `#[skprocess]` items with `runs = 1`, beside 1,000 items of a
//!   plain function that does the same arithmetic.
//! - `startup/*`: `Pool::new(2)` and a 2-item map, beside two bare re-execs of this binary
//!   that exit at once.
//!
//! Run with `cargo bench --bench pool`.

#[allow(
    dead_code,
    reason = "the pool uses the bare re-exec and the byte echo of the floors"
)]
mod floor;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::Criterion;
use criterion::measurement::WallTime;
use floor::Role;
use rayon::prelude::*;
use skprocess::prelude::*;

/// Frames per `write` of the raw tiny-item floor: 16 KB, well inside a pipe's 64 KiB buffer
/// either way, so a chunk never waits for its own echo.
const RAW_CHUNK: usize = 1000;

fn double(x: u64) -> u64 {
    x * 2
}

/// `rounds` of a multiply-add loop: about 5 ms of CPU with the rounds of [`rounds_for_5ms`],
/// which the bench calibrates once, so the pool and the single thread do the same work.
fn burn((x, rounds): (u64, u64)) -> u64 {
    let mut acc = x;
    for i in 0..rounds {
        acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    acc
}

fn rounds_for_5ms() -> u64 {
    let probe = 1_000_000u64;
    let started = Instant::now();
    burn((0, probe));
    let per_round = started.elapsed().as_nanos().max(1) as f64 / probe as f64;
    (5_000_000.0 / per_round) as u64
}

#[derive(Serialize, Deserialize)]
struct Doubling(u64);

#[skprocess]
impl Doubling {
    fn run(&mut self) {
        self.0 *= 2;
    }

    fn result(&mut self) -> u64 {
        self.0
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(20);
    bench_tiny(&mut criterion);
    bench_cpu(&mut criterion);
    bench_processes(&mut criterion);
    bench_startup(&mut criterion);
    criterion.final_summary();
}

fn bench_tiny(c: &mut Criterion) {
    let pool = Pool::new(2).unwrap();
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let items: Vec<u64> = (0..10_000).collect();
    let mut group = c.benchmark_group("tiny_10k");
    group.bench_function("pool_2_workers", |b| {
        b.iter(|| {
            assert_eq!(
                pool.map(double, items.iter().copied()).unwrap().len(),
                10_000
            )
        })
    });
    group.bench_function("rayon_2_threads", |b| {
        b.iter(|| {
            let out: Vec<u64> = threads.install(|| items.par_iter().map(|&x| double(x)).collect());
            assert_eq!(out.len(), 10_000);
        })
    });
    group.bench_function("single_thread", |b| {
        b.iter(|| {
            let out: Vec<u64> = items
                .iter()
                .map(|&x| std::hint::black_box(double(x)))
                .collect();
            assert_eq!(out.len(), 10_000);
        })
    });
    bench_raw_tiny(&mut group, &items);
    group.finish();
}

/// The raw floor of `tiny_10k`: half the items to each of two re-executed processes that echo
/// the bytes they read, one thread per process, [`RAW_CHUNK`] 16-byte frames per `write`.
fn bench_raw_tiny(group: &mut criterion::BenchmarkGroup<'_, WallTime>, items: &[u64]) {
    let mut echoes: Vec<_> = (0..2).map(|_| floor::connect(Role::EchoBytes)).collect();
    group.bench_function("raw_2_echo_processes", |b| {
        b.iter(|| {
            let halves = items.chunks(items.len().div_ceil(2));
            let echoed: usize = std::thread::scope(|scope| {
                let threads: Vec<_> = echoes
                    .iter_mut()
                    .zip(halves)
                    .map(|((_, stream, _), half)| scope.spawn(move || echo_items(stream, half)))
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).sum()
            });
            assert_eq!(echoed, items.len());
        })
    });
    for (_listener, stream, mut child) in echoes {
        drop(stream);
        child.wait().unwrap();
    }
}

/// Sends `items` as 16-byte frames, [`RAW_CHUNK`] per `write`, reading each chunk's echo back
/// before the next; the count of items that came back.
fn echo_items(stream: &mut floor::Stream, items: &[u64]) -> usize {
    let mut out = Vec::with_capacity(RAW_CHUNK * 16);
    let mut back = vec![0u8; RAW_CHUNK * 16];
    let mut echoed = 0;
    for chunk in items.chunks(RAW_CHUNK) {
        out.clear();
        for x in chunk {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
        }
        stream.write_all(&out).unwrap();
        stream.read_exact(&mut back[..out.len()]).unwrap();
        echoed += back[..out.len()]
            .chunks(16)
            .zip(chunk)
            .filter(|(frame, x)| frame[..8] == x.to_le_bytes())
            .count();
    }
    echoed
}

fn bench_cpu(c: &mut Criterion) {
    let pool = Pool::new(2).unwrap();
    let rounds = rounds_for_5ms();
    let items = move || (0..200).map(move |x| (x, rounds));
    let mut group = c.benchmark_group("cpu_200x5ms");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("pool_2_workers", |b| {
        b.iter(|| assert_eq!(pool.map(burn, items()).unwrap().len(), 200))
    });
    group.bench_function("single_thread", |b| {
        b.iter(|| items().map(burn).fold(0u64, u64::wrapping_add))
    });
    // The same work on 2 threads of this process, dealt out by rayon: what 2 cores of this
    // machine give at best, load and all, beside the ideal of half the single thread.
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let all: Vec<(u64, u64)> = items().collect();
    group.bench_function("rayon_2_threads", |b| {
        b.iter(|| {
            let out: Vec<u64> =
                threads.install(|| all.par_iter().map(|&item| burn(item)).collect());
            assert_eq!(out.len(), 200);
        })
    });
    group.finish();
}

fn bench_processes(c: &mut Criterion) {
    let pool = Pool::new(2).unwrap();
    let mut group = c.benchmark_group("processes_1000");
    group.bench_function("skprocess_items_runs_1", |b| {
        b.iter(|| {
            assert_eq!(
                pool.map_processes((0..1000).map(Doubling)).unwrap().len(),
                1000
            )
        })
    });
    group.bench_function("plain_function_items", |b| {
        b.iter(|| assert_eq!(pool.map(double, 0..1000).unwrap().len(), 1000))
    });
    group.finish();
}

fn bench_startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group.bench_function("pool_new_2_and_map_2_items", |b| {
        b.iter(|| {
            let pool = Pool::new(2).unwrap();
            assert_eq!(pool.map(double, [1, 2]).unwrap(), [2, 4]);
        })
    });
    group.bench_function("two_bare_reexecs", |b| {
        b.iter(|| {
            let children = [
                floor::reexec(Role::Exit, None),
                floor::reexec(Role::Exit, None),
            ];
            for mut child in children {
                assert!(child.wait().unwrap().success());
            }
        })
    });
    group.finish();
}
