//! The distributed pool, measured beside the local one in one run:
//!
//! - `cluster_tiny_10k/*`: 10,000 items of `x * 2` over 2 hosts × 1 worker through Redis,
//!   beside a local `Pool(2)` (target: ≥ 50k items/s over the cluster).
//! - `cluster_cpu_200x5ms/*`: 200 items of about 5 ms of CPU over 2 hosts × 1 worker, beside
//!   the same work in one thread; the ideal 2-core time is half the single-threaded one
//!   (target: ≥ 90% of ideal).
//! - `cluster_queue_1k/*`: 1,000 `u64` messages put one by one (and with one `put_many`), then
//!   read one by one, by one thread, on a queue on Redis (`Queue::on_with`), beside the same
//!   on a local `Queue::new()` (put + get pairs per second).
//!
//! The hosts are this bench binary started again with `SKPROCESS_SERVE`; the server is
//! `REDIS_URL` when set, else a `redis-server` the bench starts on a free port. Run with
//! `cargo bench --bench cluster`.

mod rig;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use skprocess::cluster::Cluster;
use skprocess::prelude::*;
use skprocess::queue::{Msg, QueueConfig};

fn double(x: u64) -> u64 {
    x * 2
}

/// `rounds` of a multiply-add loop: about 5 ms of CPU with the rounds of [`rounds_for_5ms`].
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

fn main() {
    skprocess::init();
    let (_rig, cluster) = rig::Rig::start("bench", 2, 1);
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    bench_tiny(&mut criterion, &cluster);
    bench_cpu(&mut criterion, &cluster);
    bench_queue(&mut criterion, &cluster);
    criterion.final_summary();
}

fn bench_tiny(c: &mut Criterion, cluster: &Cluster) {
    let remote = Pool::on(cluster).unwrap();
    let local = Pool::new(2).unwrap();
    let items: Vec<u64> = (0..10_000).collect();
    let mut group = c.benchmark_group("cluster_tiny_10k");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("cluster_2_hosts_x_1_worker", |b| {
        b.iter(|| {
            let out = remote.map(double, items.iter().copied()).unwrap();
            assert_eq!(out.len(), 10_000);
        })
    });
    group.bench_function("local_pool_2_workers", |b| {
        b.iter(|| {
            let out = local.map(double, items.iter().copied()).unwrap();
            assert_eq!(out.len(), 10_000);
        })
    });
    group.finish();
}

fn bench_cpu(c: &mut Criterion, cluster: &Cluster) {
    let remote = Pool::on(cluster).unwrap();
    let rounds = rounds_for_5ms();
    let items = move || (0..200).map(move |x| (x, rounds));
    let mut group = c.benchmark_group("cluster_cpu_200x5ms");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("cluster_2_hosts_x_1_worker", |b| {
        b.iter(|| assert_eq!(remote.map(burn, items()).unwrap().len(), 200))
    });
    group.bench_function("single_thread", |b| {
        b.iter(|| items().map(burn).fold(0u64, u64::wrapping_add))
    });
    group.finish();
}

/// Messages per measured iteration of the queue benches.
const QUEUE_MESSAGES: u64 = 1000;

fn bench_queue(c: &mut Criterion, cluster: &Cluster) {
    let remote: Queue<u64> = Queue::on_with(cluster, "bench", QueueConfig::default()).unwrap();
    let local: Queue<u64> = Queue::new().unwrap();
    let mut group = c.benchmark_group("cluster_queue_1k");
    group.throughput(Throughput::Elements(QUEUE_MESSAGES));
    let put_get = |q: &Queue<u64>| {
        for i in 0..QUEUE_MESSAGES {
            q.put(i).unwrap();
        }
        drain(q);
    };
    group.bench_function("cluster_put_then_get", |b| b.iter(|| put_get(&remote)));
    group.bench_function("cluster_put_many_then_get", |b| {
        b.iter(|| {
            remote.put_many((0..QUEUE_MESSAGES).map(Msg::new)).unwrap();
            drain(&remote);
        })
    });
    group.bench_function("local_put_then_get", |b| b.iter(|| put_get(&local)));
    group.finish();
}

/// Reads [`QUEUE_MESSAGES`] messages and checks their sum.
fn drain(q: &Queue<u64>) {
    let sum: u64 = (0..QUEUE_MESSAGES)
        .map(|_| q.get().unwrap().unwrap().data)
        .sum();
    assert_eq!(sum, QUEUE_MESSAGES * (QUEUE_MESSAGES - 1) / 2);
}
