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

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use skprocess::cluster::{Cluster, SERVE_ENV, SERVE_WORKERS_ENV};
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

/// The server and hosts the bench started, killed when it ends (the hosts first, so none
/// reports the server going away).
struct Rig {
    children: Vec<Child>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() {
    skprocess::init();
    let mut rig = Rig {
        children: Vec::new(),
    };
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(_) => start_redis(&mut rig),
    };
    let name = format!("bench-share-{}", std::process::id());
    for _ in 0..2 {
        let host = Command::new(std::env::current_exe().unwrap())
            .env(SERVE_ENV, format!("{url}/{name}"))
            .env(SERVE_WORKERS_ENV, "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rig.children.push(host);
    }
    let cluster = Cluster::redis(&url, &name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.hosts().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the hosts did not join");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    bench_add(&mut criterion, &cluster, &url, &name);
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

/// Starts `redis-server` on a free port of 127.0.0.1 and waits until it answers.
fn start_redis(rig: &mut Rig) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (install it, or set REDIS_URL)");
    rig.children.push(server);
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Cluster::redis(&url, "probe").is_err() {
        assert!(Instant::now() < deadline, "redis-server did not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    url
}
