//! Share on Redis, measured beside the raw commands in one run:
//!
//! - `cluster_share_add/share_on_redis`: `share.counter += 1` from 4 processes on 2 hosts
//!   (2 hosts × 2 workers, one map item each), every write applied before it returns.
//! - `cluster_share_add/raw_incrby`: the same 4 processes sending `INCRBY` themselves, each
//!   waiting for its reply before the next (the same one-command round trips as the share).
//! - `cluster_share_add/raw_incrby_pipelined_64`: the same, 64 commands per round trip (what
//!   no read-your-writes share can do per write; the server's ceiling here).
//!
//! The hosts are this bench binary started again with `SKPROCESS_SERVE`; the server is
//! `REDIS_URL` when set, else a `redis-server` the bench starts on a free port. Run with
//! `cargo bench --bench cluster_share`.

mod rig;

use std::time::Duration;

use criterion::{Criterion, Throughput};
use skprocess::cluster::Cluster;
use skprocess::prelude::*;

/// Writes per process per iteration.
const WRITES: u64 = 2_000;

/// Processes writing at once (2 hosts × 2 workers).
const PROCESSES: u64 = 4;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    counter: u64,
}

fn share_adds(share: Share<Counter>) -> u64 {
    let mut share = share;
    for _ in 0..WRITES {
        share.counter += 1;
    }
    WRITES
}

/// `INCRBY key 1` `WRITES` times, `depth` commands per round trip.
fn raw_incrby((url, key, depth): (String, String, u64)) -> u64 {
    let mut connection = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .unwrap();
    let mut sent = 0;
    while sent < WRITES {
        let batch = depth.min(WRITES - sent);
        let mut pipe = redis::pipe();
        for _ in 0..batch {
            pipe.cmd("INCRBY").arg(&key).arg(1).ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
        sent += batch;
    }
    WRITES
}

fn main() {
    skprocess::init();
    let (rig, cluster) = rig::Rig::start("bench-share", 2, 2);
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    bench_add(&mut criterion, &cluster, &rig.url, &rig.name);
    criterion.final_summary();
}

fn bench_add(c: &mut Criterion, cluster: &Cluster, url: &str, name: &str) {
    let pool = Pool::on(cluster).unwrap();
    let share = Share::on(cluster, Counter::default()).unwrap();
    let mut group = c.benchmark_group("cluster_share_add");
    group.throughput(Throughput::Elements(PROCESSES * WRITES));
    group.bench_function("share_on_redis", |b| {
        b.iter(|| {
            let items = (0..PROCESSES).map(|_| share.clone());
            let done: u64 = pool.map(share_adds, items).unwrap().into_iter().sum();
            assert_eq!(done, PROCESSES * WRITES);
        })
    });
    for (label, depth) in [("raw_incrby", 1), ("raw_incrby_pipelined_64", 64)] {
        let key = format!("skp:{name}:bench:raw");
        group.bench_function(label, |b| {
            b.iter(|| {
                let items = (0..PROCESSES).map(|_| (url.to_owned(), key.clone(), depth));
                let done: u64 = pool.map(raw_incrby, items).unwrap().into_iter().sum();
                assert_eq!(done, PROCESSES * WRITES);
            })
        });
    }
    group.finish();
    assert!(share.counter.get().unwrap() >= PROCESSES * WRITES);
}
