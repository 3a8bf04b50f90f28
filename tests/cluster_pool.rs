//! The distributed pool on a real Redis: each test starts its own `redis-server` on a free
//! port and two worker hosts — this test binary started again with `SKPROCESS_SERVE`, each in
//! a process group of its own and reaching Redis through its own proxy — and maps over them.
//! Chaos: a host SIGKILLed mid-map, a host's link cut mid-map, the server stopped and started
//! between maps. Every item is accounted for; every wait is bounded.
// Unix by nature: the hosts are process groups, SIGKILLed whole (tests/support/hosts.rs).
#![cfg(unix)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use skprocess::cluster::{Cluster, ClusterConfig};
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/hosts.rs"]
mod hosts;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis_server;

use hosts::Host;
use proxy::Proxy;
use redis_server::RedisServer;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(240);

/// How long hosts may take to start and join.
const JOIN: Duration = Duration::from_secs(60);

/// A server, and hosts each behind its own proxy.
struct Rig {
    server: RedisServer,
    proxies: Vec<Proxy>,
    hosts: Vec<Host>,
    name: String,
}

impl Rig {
    /// A server and `count` hosts of one worker each, labelled `h0`, `h1`, …; `None` when
    /// `redis-server` is not installed (outside CI).
    fn start(name: &str, count: usize) -> Option<Self> {
        let server = RedisServer::start()?;
        let mut rig = Self {
            server,
            proxies: Vec::new(),
            hosts: Vec::new(),
            name: name.to_owned(),
        };
        for i in 0..count {
            let proxy = Proxy::start(rig.server.port());
            let label = format!("h{i}");
            let host = Host::start(&proxy.url(), name, 1, &[("HOST_LABEL", &label)]);
            rig.proxies.push(proxy);
            rig.hosts.push(host);
        }
        rig.wait_for_hosts(count);
        Some(rig)
    }

    fn cluster(&self) -> Cluster {
        Cluster::redis(&self.server.url(), &self.name).expect("the cluster")
    }

    fn cluster_with(&self, config: ClusterConfig) -> Cluster {
        Cluster::redis_with(&self.server.url(), &self.name, config).expect("the cluster")
    }

    /// Waits until `count` hosts of this build heartbeat.
    fn wait_for_hosts(&self, count: usize) {
        let cluster = self.cluster();
        let deadline = Instant::now() + JOIN;
        loop {
            let alive = cluster
                .hosts()
                .map(|hosts| hosts.iter().filter(|h| h.is_same_build()).count())
                .unwrap_or(0);
            if alive >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {alive} of {count} hosts joined"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the cluster's stream is empty and no map key is left.
    fn wait_until_clean(&self) {
        let mut redis = self.redis();
        let items = format!("skp:{}:items", self.name);
        let jobs = format!("skp:{}:job:*", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let entries: u64 = redis::cmd("XLEN").arg(&items).query(&mut redis).unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg(&jobs).query(&mut redis).unwrap();
            if entries == 0 && keys.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "left behind: {entries} entries, keys {keys:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain connection to the server, for looking at keys.
    fn redis(&self) -> redis::Connection {
        redis::Client::open(self.server.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("a connection to the test's server")
    }
}

/// An item's square and the label of the host that ran it.
fn square_where(x: u64) -> (u64, String) {
    (x * x, std::env::var("HOST_LABEL").unwrap_or_default())
}

/// Like [`square_where`], taking a while.
fn slow_square_where(x: u64) -> (u64, String) {
    std::thread::sleep(Duration::from_millis(50));
    square_where(x)
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn a_map_runs_on_both_hosts_in_input_order_and_leaves_no_job_keys() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("plain", 2) else {
        return;
    };
    let cluster = rig.cluster();
    let hosts = cluster.hosts().unwrap();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(hosts.iter().all(|h| h.is_same_build() && h.cores == 1));
    let pool = Pool::on(&cluster).unwrap();
    assert_eq!(pool.workers(), 2);
    let out = pool.map(slow_square_where, 0..60u64).unwrap();
    let squares: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
    assert_eq!(squares, (0..60u64).map(|x| x * x).collect::<Vec<_>>());
    let labels: BTreeSet<&str> = out.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(labels, BTreeSet::from(["h0", "h1"]), "both hosts ran items");
    // A tiny map of many items, through the same pool.
    let many = pool.map(square_where, 0..5000u64).unwrap();
    assert!(
        many.iter()
            .enumerate()
            .all(|(i, (s, _))| *s == (i as u64) * (i as u64))
    );
    drop(pool);
    rig.wait_until_clean();
}

#[test]
fn modifiers_and_errors_are_the_local_pools() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("modifiers", 2) else {
        return;
    };
    let cluster = rig.cluster();
    let pool = Pool::on(&cluster).unwrap();
    assert_eq!(
        pool.star()
            .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4)])
            .unwrap(),
        [3, 7]
    );
    let mut unordered = pool.unordered_map(|x: u64| x + 1, 0..100u64).unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (1..=100u64).collect::<Vec<_>>());
    let lazy: Vec<u64> = pool
        .imap(|x: u64| x * 3, 0..50u64)
        .map(Result::unwrap)
        .take(10)
        .collect();
    assert_eq!(lazy, (0..10u64).map(|x| x * 3).collect::<Vec<_>>());
    let future = pool.asynced().map(|x: u64| x * 5, 0..20u64);
    assert_eq!(
        block_on(future).unwrap(),
        (0..20u64).map(|x| x * 5).collect::<Vec<_>>()
    );
    let job = pool.background().map(|x: u64| x + 10, 0..20u64);
    let waited = job.join_timeout(Duration::from_secs(60)).ok().unwrap();
    assert_eq!(waited.unwrap(), (10..30u64).collect::<Vec<_>>());
    let picky: fn(u64) -> u64 = |x| if x == 3 { panic!("no threes") } else { x };
    match pool.map(picky, 0..6u64) {
        Err(Error::Item { index: 3, error }) => {
            assert!(
                matches!(*error, Error::Panicked { ref message, .. } if message == "no threes")
            );
        }
        other => panic!("expected item 3's panic, got {other:?}"),
    }
    let sleepy: fn(u64) -> u64 = |x| {
        if x == 1 {
            std::thread::sleep(Duration::from_secs(30));
        }
        x
    };
    let outcomes: Vec<Result<u64, Error>> = pool
        .timeout(Duration::from_millis(300))
        .imap(sleepy, 0..4u64)
        .collect();
    assert!(matches!(
        &outcomes[1],
        Err(Error::Item { index: 1, error }) if matches!(**error, Error::Timeout { of: skprocess::error::Timed::Item, .. })
    ));
    assert!(
        outcomes
            .iter()
            .enumerate()
            .all(|(i, o)| i == 1 || o.is_ok())
    );
}

/// The smallest executor: polls on this thread, parks between wakes, gives up after a minute.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        assert!(Instant::now() < deadline, "the future did not complete");
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[derive(Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[skprocess(runs = 3)]
impl Counter {
    fn run(&mut self) {
        self.value += 1;
    }
    fn result(&mut self) -> u64 {
        self.value
    }
}

#[test]
fn process_types_run_their_lives_on_hosts() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("processes", 1) else {
        return;
    };
    let pool = Pool::on(&rig.cluster()).unwrap();
    let out = pool
        .map_processes((0..4u64).map(|value| Counter { value }))
        .unwrap();
    assert_eq!(out, [3, 4, 5, 6]);
}

/// Maps `count` slow items, applying `chaos` once `after` outcomes are in; every item's
/// outcome, in input order.
fn map_through_chaos(
    pool: &Pool,
    count: u64,
    after: usize,
    chaos: impl FnOnce(),
) -> Vec<Result<(u64, String), Error>> {
    let mut chaos = Some(chaos);
    let mut outcomes = Vec::new();
    for outcome in pool.imap(slow_square_where, 0..count) {
        outcomes.push(outcome);
        if outcomes.len() == after {
            if let Some(chaos) = chaos.take() {
                chaos();
            }
        }
    }
    outcomes
}

#[test]
fn a_host_killed_mid_map_loses_no_item() {
    let _bound = bound::within(TEST_BOUND);
    let Some(mut rig) = Rig::start("sigkill", 2) else {
        return;
    };
    let pool = Pool::on(&rig.cluster()).unwrap();
    let mut victim = rig.hosts.remove(0);
    let outcomes = map_through_chaos(&pool, 80, 10, || victim.kill());
    assert_eq!(outcomes.len(), 80);
    for (i, outcome) in outcomes.iter().enumerate() {
        let (square, _) = outcome.as_ref().expect("the other host ran it");
        assert_eq!(*square, (i as u64) * (i as u64));
    }
    assert!(!victim.is_running());
}

#[test]
fn past_its_attempts_an_item_fails_as_crashed_naming_the_host() {
    let _bound = bound::within(TEST_BOUND);
    let Some(mut rig) = Rig::start("attempts", 2) else {
        return;
    };
    let pool = Pool::on(&rig.cluster_with(ClusterConfig::default().attempts(1))).unwrap();
    let mut victim = rig.hosts.remove(0);
    let victim_id = format!("-{}-", victim.pid());
    let outcomes = map_through_chaos(&pool, 80, 4, || victim.kill());
    assert_eq!(outcomes.len(), 80, "every item is accounted for");
    let crashed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(Error::Item { error, .. }) => match &**error {
                Error::Crashed { status, .. } => Some(status),
                other => panic!("unexpected failure {other:?}"),
            },
            _ => None,
        })
        .collect();
    assert!(!crashed.is_empty(), "the killed host held items");
    assert!(
        crashed.iter().all(|s| s.contains(&victim_id)),
        "{crashed:?}"
    );
}

#[test]
fn a_host_cut_off_mid_map_loses_no_item() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("partition", 2) else {
        return;
    };
    let pool = Pool::on(&rig.cluster()).unwrap();
    let outcomes = map_through_chaos(&pool, 80, 10, || rig.proxies[0].cut());
    assert_eq!(outcomes.len(), 80);
    for (i, outcome) in outcomes.iter().enumerate() {
        let (square, _) = outcome.as_ref().expect("an item was lost");
        assert_eq!(*square, (i as u64) * (i as u64));
    }
    // Healed, the cut-off host joins again and runs items.
    rig.proxies[0].heal();
    rig.wait_for_hosts(2);
    let out = pool.map(square_where, 0..10u64).unwrap();
    assert_eq!(out.len(), 10);
}

#[test]
fn a_slow_link_to_one_host_costs_time_not_items() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("slow", 2) else {
        return;
    };
    let pool = Pool::on(&rig.cluster()).unwrap();
    rig.proxies[0].slow(Duration::from_millis(20));
    let out = pool.map(slow_square_where, 0..60u64).unwrap();
    let squares: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
    assert_eq!(squares, (0..60u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn a_server_down_is_a_clear_error_and_its_return_recovers() {
    let _bound = bound::within(TEST_BOUND);
    let Some(mut rig) = Rig::start("restart", 1) else {
        return;
    };
    let cluster = rig.cluster();
    let pool = Pool::on(&cluster).unwrap();
    assert_eq!(pool.map(|x: u64| x + 1, 0..10u64).unwrap().len(), 10);
    rig.server.stop();
    match pool.map(|x: u64| x + 1, 0..10u64) {
        Err(Error::Item { error, .. }) => {
            let text = error.to_string();
            assert!(matches!(*error, Error::Cluster { .. }), "{text}");
            assert!(text.contains(&format!("{}", rig.server.port())), "{text}");
        }
        other => panic!("expected the server's error, got {other:?}"),
    }
    assert!(matches!(cluster.hosts(), Err(Error::Cluster { .. })));
    rig.server.restart();
    rig.wait_for_hosts(1);
    assert_eq!(
        pool.map(|x: u64| x + 1, 0..10u64).unwrap(),
        (1..=10u64).collect::<Vec<_>>()
    );
}

#[test]
fn a_map_left_early_leaves_nothing_behind() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("abandoned", 1) else {
        return;
    };
    let pool = Pool::on(&rig.cluster()).unwrap();
    let first: Vec<_> = pool.imap(slow_square_where, 0..400u64).take(2).collect();
    assert_eq!(first.len(), 2);
    drop(pool);
    // The caller deletes the entries no host finished, the host stops the one it runs within
    // a second, and the map's keys go.
    rig.wait_until_clean();
}

#[test]
fn without_a_host_of_this_build_items_fail_with_no_worker() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("nohost", 0) else {
        return;
    };
    let config = ClusterConfig::default().no_host_timeout(Duration::from_secs(2));
    let pool = Pool::on(&rig.cluster_with(config)).unwrap();
    match pool.map(|x: u64| x, 0..3u64) {
        Err(Error::Item { error, .. }) => {
            assert!(
                matches!(&*error, Error::NoWorker { reason: text } if text.contains("nohost")),
                "{error}"
            );
        }
        other => panic!("expected NoWorker, got {other:?}"),
    }
    rig.wait_until_clean();
}

#[test]
fn the_password_comes_from_the_environment_only() {
    let _bound = bound::within(TEST_BOUND);
    // A variable every test process has stands in for the secret's variable, so that the
    // test sets no environment of its own.
    let password = std::env::var("HOME").expect("HOME is set");
    let Some(server) = RedisServer::start_with_password(&password) else {
        return;
    };
    let inline = format!("redis://:{password}@127.0.0.1:{}/0", server.port());
    match Cluster::redis(&inline, "secret") {
        Err(Error::Config { problem: text }) => assert!(!text.contains(&password), "{text}"),
        other => panic!("a URL with a password must be refused, got {other:?}"),
    }
    let unset = ClusterConfig::default().password_env("SKPROCESS_TEST_NO_SUCH_VARIABLE");
    assert!(Cluster::redis_with(&server.url(), "secret", unset).is_err());
    let proxy = Proxy::start(server.port());
    let _host = Host::start(
        &proxy.url(),
        "secret",
        1,
        &[("SKPROCESS_REDIS_PASSWORD", &password)],
    );
    let config = ClusterConfig::default().password_env("HOME");
    let cluster = Cluster::redis_with(&server.url(), "secret", config).unwrap();
    let deadline = Instant::now() + JOIN;
    while cluster.hosts().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the host did not join");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pool = Pool::on(&cluster).unwrap();
    assert_eq!(pool.map(|x: u64| x * 2, 0..5u64).unwrap(), [0, 2, 4, 6, 8]);
}

#[test]
fn an_entry_of_another_build_is_left_for_its_build_while_its_caller_lives() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("foreign", 1) else {
        return;
    };
    let mut redis = rig.redis();
    // A foreign map whose caller lives (its job key), and one whose caller is gone.
    redis::cmd("SET")
        .arg("skp:foreign:job:elsewhere")
        .arg("00")
        .query::<()>(&mut redis)
        .unwrap();
    let orphan: String = redis::cmd("XADD")
        .arg("skp:foreign:items")
        .arg("*")
        .arg("build")
        .arg("00")
        .arg("job")
        .arg("gone")
        .arg("body")
        .arg(b"\xff\xff".as_slice())
        .query(&mut redis)
        .unwrap();
    let id: String = redis::cmd("XADD")
        .arg("skp:foreign:items")
        .arg("*")
        .arg("build")
        .arg("00")
        .arg("job")
        .arg("elsewhere")
        .arg("body")
        .arg(b"\xff\xff".as_slice())
        .query(&mut redis)
        .unwrap();
    let pool = Pool::on(&rig.cluster()).unwrap();
    assert_eq!(pool.map(|x: u64| x, 0..20u64).unwrap().len(), 20);
    let kept: redis::Value = redis::cmd("XRANGE")
        .arg("skp:foreign:items")
        .arg(&id)
        .arg(&id)
        .query(&mut redis)
        .unwrap();
    assert!(
        matches!(&kept, redis::Value::Array(entries) if entries.len() == 1),
        "{kept:?}"
    );
    let dropped: redis::Value = redis::cmd("XRANGE")
        .arg("skp:foreign:items")
        .arg(&orphan)
        .arg(&orphan)
        .query(&mut redis)
        .unwrap();
    assert!(
        matches!(&dropped, redis::Value::Array(entries) if entries.is_empty()),
        "the entry of a gone caller is deleted: {dropped:?}"
    );
}

/// Not a test of its own: run by [`a_caller_sigkilled_mid_map_leaves_nothing_behind_past_the_job_ttl`]
/// in a fresh run of this binary, as the caller it kills. Maps slow items on the cluster named
/// by `CALLER_CLUSTER` at `CALLER_URL` until it is killed.
#[test]
fn maps_as_a_caller_until_killed() {
    let (Some(url), Some(name)) = (
        std::env::var_os("CALLER_URL"),
        std::env::var_os("CALLER_CLUSTER"),
    ) else {
        return;
    };
    let cluster = Cluster::redis(url.to_str().unwrap(), name.to_str().unwrap()).unwrap();
    let pool = Pool::on(&cluster).unwrap();
    for result in pool.imap(slow_square_where, 0..100_000u64) {
        result.unwrap();
        println!("result");
    }
}

#[test]
fn a_caller_sigkilled_mid_map_leaves_nothing_behind_past_the_job_ttl() {
    use std::io::{BufRead, BufReader};
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("killedcaller", 1) else {
        return;
    };
    let mut caller = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "maps_as_a_caller_until_killed",
            "--exact",
            "--nocapture",
            "-q",
        ])
        .env("CALLER_URL", rig.server.url())
        .env("CALLER_CLUSTER", &rig.name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Mid-map: once a result came back, the map's entries are in the stream and a host runs one.
    let stdout = caller.stdout.take().unwrap();
    let first = bound::on_thread(JOIN, "the caller's first result", move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "result")
    });
    assert!(first, "the caller ended before its first result");
    caller.kill().unwrap(); // SIGKILL
    caller.wait().unwrap();

    // What it left expires: every key of its map has a time to live, no longer than JOB_TTL.
    let mut redis = rig.redis();
    let jobs: Vec<String> = redis::cmd("KEYS")
        .arg(format!("skp:{}:job:*", rig.name))
        .query(&mut redis)
        .unwrap();
    assert!(!jobs.is_empty(), "the killed caller's map keys were there");
    for key in &jobs {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut redis).unwrap();
        let limit = i64::try_from(skprocess::cluster::JOB_TTL.as_millis()).unwrap();
        assert!(
            ttl == -2 || (0 < ttl && ttl <= limit),
            "{key} lives {ttl} ms (at most {limit})"
        );
    }
    // Then it goes: the keys expire and the host drops the entries of a caller that is gone.
    let items = format!("skp:{}:items", rig.name);
    let pattern = format!("skp:{}:job:*", rig.name);
    let deadline = Instant::now() + skprocess::cluster::JOB_TTL + Duration::from_secs(30);
    loop {
        let entries: u64 = redis::cmd("XLEN").arg(&items).query(&mut redis).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut redis).unwrap();
        if entries == 0 && keys.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind past the job's time to live: {entries} entries, keys {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And the cluster still serves the next caller.
    let pool = Pool::on(&rig.cluster()).unwrap();
    assert_eq!(pool.map(|x: u64| x * 3, 0..10u64).unwrap().len(), 10);
}

#[test]
fn a_tls_url_is_accepted_and_fails_only_where_no_server_listens() {
    // TLS is supported (tests/cluster_tls.rs runs maps over it): a rediss:// url is parsed,
    // and with nothing listening the error is the connection's, not the configuration's.
    let error = bound::on_thread(Duration::from_secs(30), "connecting to no server", || {
        Cluster::redis("rediss://127.0.0.1:1/0", "tls").map(|_| ())
    })
    .unwrap_err();
    assert!(
        matches!(error, skprocess::Error::Cluster { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}
