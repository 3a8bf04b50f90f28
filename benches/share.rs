//! Share against its raw floors, measured in the same run on the same machine:
//!
//! - `increments/*`: `share.counter += 1` from 4 processes × 250 000, timed from the moment
//!   all four are ready until the coordinator has applied all 1 000 000 (checked exact),
//!   against 4 bare processes each writing 250 000 frames of the same size (10 bytes, one
//!   `write` each) to one reader.
//! - `read_after_write/*`: in a child, `counter += 1` then `counter.get()` (a write, then a
//!   read that must observe it: one round trip to the coordinator), against a bare 16-byte
//!   ping-pong with a re-executed echo process.
//! - `method_1kib/*`: in a child, a `#[shared]` method taking a 1 KiB argument
//!   (fire-and-forget; a final read waits until all are applied), against a bare stream of
//!   1 KiB frames from a re-executed process.
//!
//! Run with `cargo bench --bench share`.

#[allow(
    dead_code,
    reason = "the re-exec and hello floors serve the other benches"
)]
mod floor;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use floor::Role;
use floor::child::{ECHO_FRAME, REQUEST};
use skprocess::prelude::*;

/// Increments per process.
const INCREMENTS: u64 = 250_000;
/// Processes incrementing at once.
const WRITERS: u64 = 4;
/// Bytes of one `+= 1` frame on the wire: 4 of length, 1 of request kind, 1 of target kind,
/// 1 of field index, 1 of operation, 1 of argument length, 1 of argument.
const INCREMENT_FRAME: u32 = 10;
/// The argument of the method call.
const KIB: usize = 1024;
/// Bytes of a 1 KiB method call on the wire (frame length, kinds, index, two lengths).
const METHOD_FRAME: u32 = 4 + 1 + 1 + 1 + 2 + 2 + KIB as u32;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Bench {
    counter: u64,
    ready: u64,
    go: bool,
    bytes: u64,
}

#[shared]
impl Bench {
    fn absorb(&mut self, data: Vec<u8>) {
        self.bytes += data.len() as u64;
    }
}

#[derive(Serialize, Deserialize)]
struct Incrementer {
    share: Share<Bench>,
}

#[skprocess]
impl Incrementer {
    fn run(&mut self) -> Result<(), Error> {
        self.share.ready += 1;
        while !self.share.go.get()? {
            std::thread::yield_now();
        }
        for _ in 0..INCREMENTS {
            self.share.counter += 1;
        }
        Ok(())
    }
}

/// A child that runs a measured loop on request: `(kind, iterations)` in, nanoseconds out.
#[derive(Serialize, Deserialize)]
struct Looper {
    share: Share<Bench>,
}

#[skprocess(runs = None, inbox = (u8, u64), outbox = u64)]
impl Looper {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let Some((kind, iterations)) = ctx.listen_timeout(Duration::from_secs(1))? else {
            return Ok(());
        };
        let data = vec![7u8; KIB];
        let started = Instant::now();
        match kind {
            0 => {
                for _ in 0..iterations {
                    self.share.counter += 1;
                    std::hint::black_box(self.share.counter.get()?);
                }
            }
            _ => {
                let before = self.share.bytes.get()?;
                for _ in 0..iterations {
                    self.share.absorb(data.clone());
                }
                assert_eq!(self.share.bytes.get()?, before + iterations * KIB as u64);
            }
        }
        ctx.tell(started.elapsed().as_nanos() as u64)
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(10);
    bench_increments(&mut criterion);
    bench_read_after_write(&mut criterion);
    bench_method(&mut criterion);
    criterion.final_summary();
}

fn bench_increments(c: &mut Criterion) {
    let mut group = c.benchmark_group("increments");
    group.throughput(Throughput::Elements(WRITERS * INCREMENTS));
    group.bench_function(BenchmarkId::new("raw_4_writers", INCREMENT_FRAME), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| floor::raw_streams(WRITERS, INCREMENTS, INCREMENT_FRAME))
                .sum()
        })
    });
    group.bench_function(
        BenchmarkId::new("share_4_processes", INCREMENT_FRAME),
        |b| b.iter_custom(|iters| (0..iters).map(|_| share_increments()).sum()),
    );
    group.finish();
}

/// 4 processes × [`INCREMENTS`] `+= 1`, from all ready until all applied; checked exact.
fn share_increments() -> Duration {
    let share = Share::new(Bench::default()).unwrap();
    let handles: Vec<_> = (0..WRITERS)
        .map(|_| {
            Incrementer {
                share: share.clone(),
            }
            .start()
            .unwrap()
        })
        .collect();
    while share.ready.get().unwrap() < WRITERS {
        std::thread::sleep(Duration::from_micros(100));
    }
    let started = Instant::now();
    share.go.set(true);
    let total = WRITERS * INCREMENTS;
    while share.counter.get().unwrap() < total {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    for handle in handles {
        handle.result().unwrap();
    }
    assert_eq!(share.counter.get().unwrap(), total);
    elapsed
}

fn bench_read_after_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_after_write");
    let (_listener, mut stream, mut child) = floor::connect(Role::Echo);
    let mut frame = [7u8; ECHO_FRAME];
    group.bench_function(BenchmarkId::new("raw_round_trip", ECHO_FRAME), |b| {
        b.iter(|| {
            stream.write_all(&frame).unwrap();
            stream.read_exact(&mut frame).unwrap();
        })
    });
    drop(stream);
    child.wait().unwrap();
    // The share must outlive the child: its coordinator stops with this process's last handle.
    let share = Share::new(Bench::default()).unwrap();
    let looper = Looper {
        share: share.clone(),
    }
    .start()
    .unwrap();
    group.bench_function("share_write_then_read_in_a_child", |b| {
        b.iter_custom(|iters| measured_in_child(&looper, 0, iters))
    });
    group.finish();
    looper.request_stop();
    looper.result().unwrap();
}

fn bench_method(c: &mut Criterion) {
    let mut group = c.benchmark_group("method_1kib");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("raw_stream", METHOD_FRAME), |b| {
        let (_listener, mut stream, mut child) = floor::connect(Role::Stream);
        b.iter_custom(|iters| {
            let started = Instant::now();
            let mut request = [0u8; REQUEST];
            request[..8].copy_from_slice(&iters.to_le_bytes());
            request[8..].copy_from_slice(&METHOD_FRAME.to_le_bytes());
            stream.write_all(&request).unwrap();
            let mut left = iters * u64::from(METHOD_FRAME);
            let mut buffer = vec![0u8; 64 * 1024];
            while left > 0 {
                left -= stream.read(&mut buffer).unwrap() as u64;
            }
            started.elapsed()
        });
        drop(stream);
        child.wait().unwrap();
    });
    // The share must outlive the child: its coordinator stops with this process's last handle.
    let share = Share::new(Bench::default()).unwrap();
    let looper = Looper {
        share: share.clone(),
    }
    .start()
    .unwrap();
    group.bench_function("share_method_in_a_child", |b| {
        b.iter_custom(|iters| measured_in_child(&looper, 1, iters))
    });
    group.finish();
    looper.request_stop();
    looper.result().unwrap();
}

fn measured_in_child(looper: &Handle<Looper>, kind: u8, iterations: u64) -> Duration {
    looper.tell((kind, iterations)).unwrap();
    let nanos = looper
        .listen_timeout(Duration::from_secs(120))
        .unwrap()
        .unwrap();
    Duration::from_nanos(nanos)
}
