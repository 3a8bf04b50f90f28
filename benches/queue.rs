//! `Queue` throughput against its raw floor, measured in the same run on the same machine:
//!
//! - `queue_2_reader_processes`: the creating process puts [`MESSAGES`] `u64` messages; two
//!   reader processes iterate the queue until their end and put their sums back (checked
//!   exact). Timed from the first put until both sums are in; the readers are started and
//!   connected before the clock starts.
//! - `raw_2_streams`: two bare re-executed processes each write half as many frames of
//!   [`FRAME`] bytes (a length prefix and a small message, one `write` each) to the bench,
//!   which reads them all — a socket stream of the same frames with nothing in the way.
//!
//! `multiprocessing.Queue` measured ~100–116k messages/s on the machine this was written on.
//! Run with `cargo bench --bench queue`.

#[allow(
    dead_code,
    reason = "the re-exec, hello and echo floors serve the other benches"
)]
mod floor;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use skprocess::Queue;
use skprocess::prelude::*;

/// Messages per measured iteration.
const MESSAGES: u64 = 200_000;
/// Reader processes.
const READERS: u64 = 2;
/// Bytes of one message's frame in the raw floor: a 4-byte length and an 8-byte message (a
/// `Msg<u64>` of a large number encodes in about that).
const FRAME: u32 = 12;

/// Connects (a read that finds nothing yet), says it is ready, then sums the queue until its
/// end.
#[derive(Serialize, Deserialize)]
struct Reader {
    q: Queue<u64>,
    ready: Queue<u64>,
    out: Queue<u64>,
}

#[skprocess]
impl Reader {
    fn run(&mut self) -> Result<(), Error> {
        self.q.get_timeout(Duration::from_millis(1))?;
        self.ready.put(1)?;
        let total: u64 = self.q.iter().map(|m| m.data).sum();
        self.out.put(total)
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(10);
    bench_throughput(&mut criterion);
    criterion.final_summary();
}

fn bench_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_throughput");
    group.throughput(Throughput::Elements(MESSAGES));
    group.bench_function(BenchmarkId::new("raw_2_streams", FRAME), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| floor::raw_streams(READERS, MESSAGES / READERS, FRAME))
                .sum()
        })
    });
    group.bench_function(BenchmarkId::new("queue_2_reader_processes", "u64"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| queue_readers()).sum())
    });
    group.finish();
}

/// [`MESSAGES`] puts from this process to two reader processes, until both sums are in.
fn queue_readers() -> Duration {
    let (q, ready, out) = (
        Queue::new().unwrap(),
        Queue::new().unwrap(),
        Queue::new().unwrap(),
    );
    let handles: Vec<_> = (0..READERS)
        .map(|_| {
            Reader {
                q: q.clone(),
                ready: ready.clone(),
                out: out.clone(),
            }
            .start()
            .unwrap()
        })
        .collect();
    for _ in 0..READERS {
        ready.get().unwrap();
    }
    let started = Instant::now();
    // Large numbers, so each message is as big as the floor's frame.
    let base = 1u64 << 40;
    for i in 0..MESSAGES {
        q.put(base + i).unwrap();
    }
    for _ in 0..READERS {
        q.put_end().unwrap();
    }
    let total: u64 = (0..READERS).map(|_| out.get().unwrap().unwrap().data).sum();
    let elapsed = started.elapsed();
    assert_eq!(total, base * MESSAGES + MESSAGES * (MESSAGES - 1) / 2);
    for handle in handles {
        handle.result().unwrap();
    }
    elapsed
}
