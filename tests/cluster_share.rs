//! Share on a real Redis: each test starts its own `redis-server` on a free port; "hosts" are
//! this test binary started again with `SKPROCESS_SERVE`, each in a process group of its own
//! behind its own proxy. Exact counts from processes on two hosts, a `WATCH` conflict that
//! retries, a panicking method that changes nothing, every native operation against the local
//! share, a cut link and a lost server. Every wait is bounded.
// Unix by nature: the hosts are process groups, SIGKILLed whole (tests/support/hosts.rs).
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skprocess::cluster::Cluster;
use skprocess::error::PanicSite;
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/hosts.rs"]
mod hosts;
#[path = "support/monitor.rs"]
mod monitor;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis_server;

use hosts::Host;
use proxy::Proxy;
use redis_server::RedisServer;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(240);

/// How long hosts may take to start and join, and processes to finish.
const JOIN: Duration = Duration::from_secs(60);

#[shared]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Tally {
    counter: u64,
    results: Vec<u64>,
    seen: BTreeMap<u64, u64>,
    recorded: u64,
    slow: u64,
}

/// How many times `slow_add` ran in this process (retries included).
static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

#[shared]
impl Tally {
    fn record(&mut self, value: u64) {
        self.recorded += value;
    }

    fn total(&self) -> u64 {
        self.counter + self.recorded
    }

    /// A read-modify-write with a pause in the middle: concurrent callers conflict.
    fn slow_add(&mut self) -> u64 {
        SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
        let before = self.slow;
        std::thread::sleep(Duration::from_millis(3));
        self.slow = before + 1;
        self.slow
    }

    /// A slower `slow_add` as a write (it returns nothing, so a caller does not wait for it).
    fn slow_bump(&mut self) {
        let before = self.slow;
        std::thread::sleep(Duration::from_millis(30));
        self.slow = before + 1;
    }

    fn explode_after_changes(&mut self) -> u64 {
        self.counter += 100;
        self.results.push(99);
        panic!("exploded on purpose");
    }

    fn explode_quietly(&mut self) {
        self.recorded += 7;
        panic!("exploded without a caller waiting");
    }
}

/// A server, and hosts each behind its own proxy.
struct Rig {
    server: RedisServer,
    _proxies: Vec<Proxy>,
    _hosts: Vec<Host>,
    name: String,
}

impl Rig {
    /// A server and `count` hosts of `workers` workers each; `None` when `redis-server` is
    /// not installed (outside CI).
    fn start(name: &str, count: usize, workers: usize) -> Option<Self> {
        let server = RedisServer::start()?;
        let mut proxies = Vec::new();
        let mut hosts = Vec::new();
        for i in 0..count {
            let proxy = Proxy::start(server.port());
            let label = format!("h{i}");
            hosts.push(Host::start(
                &proxy.url(),
                name,
                workers,
                &[("HOST_LABEL", &label)],
            ));
            proxies.push(proxy);
        }
        let rig = Self {
            server,
            _proxies: proxies,
            _hosts: hosts,
            name: name.to_owned(),
        };
        let cluster = rig.cluster();
        let deadline = Instant::now() + JOIN;
        while cluster.hosts().map_or(0, |h| h.len()) < count {
            assert!(Instant::now() < deadline, "the hosts did not join");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(rig)
    }

    fn cluster(&self) -> Cluster {
        Cluster::redis(&self.server.url(), &self.name).expect("the cluster")
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        let mut redis = redis::Client::open(self.server.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("a connection to the test's server");
        redis::cmd("KEYS").arg(pattern).query(&mut redis).unwrap()
    }
}

/// One item of a map on the hosts: 250 of each operation on the share; the host's label.
fn bump((share, id): (Share<Tally>, u64)) -> String {
    let mut share = share;
    for i in 0..250 {
        share.counter += 1;
        share.results.push(id * 1000 + i);
        let previous = share.seen.insert(id * 1000 + i, i).unwrap();
        assert_eq!(previous, None);
        share.record(1);
    }
    std::env::var("HOST_LABEL").unwrap_or_default()
}

#[test]
fn counters_and_lists_from_four_processes_on_two_hosts_are_exact() {
    let _bound = bound::within(TEST_BOUND);
    let Some(rig) = Rig::start("share-exact", 2, 2) else {
        return;
    };
    let monitor = monitor::Monitor::start(rig.server.port());
    let cluster = rig.cluster();
    let share = Share::on(&cluster, Tally::default()).unwrap();
    let pool = Pool::on(&cluster).unwrap();
    let items: Vec<_> = (0..4u64).map(|id| (share.clone(), id)).collect();
    let labels: BTreeSet<String> = pool.map(bump, items).unwrap().into_iter().collect();
    assert_eq!(labels, BTreeSet::from(["h0".into(), "h1".into()]));
    let value = share.get().unwrap();
    // All four counts at once, with the share's last error: a count that is short names
    // what went missing beside it.
    assert_eq!(
        (
            value.counter,
            value.recorded,
            value.results.len(),
            value.seen.len()
        ),
        (1000, 1000, 1000, 1000),
        "counter, recorded, results, seen; the share's last error: {:?}; {}",
        share.last_error(),
        monitor.field_report("counter")
    );
    assert_eq!(share.total().unwrap(), 2000);
    let mut results = value.results.clone();
    results.sort_unstable();
    let expected: Vec<u64> = (0..4u64)
        .flat_map(|id| (0..250).map(move |i| id * 1000 + i))
        .collect();
    assert_eq!(results, expected);
    assert_eq!(value.seen.len(), 1000);
    // The last handle in the creating process takes the share's keys with it.
    drop(pool);
    drop(share);
    assert_eq!(rig.keys("skp:share-exact:share:*"), Vec::<String>::new());
}

#[derive(Serialize, Deserialize)]
struct SlowAdder {
    share: Share<Tally>,
    times: u64,
}

#[skprocess]
impl SlowAdder {
    fn run(&mut self) -> Result<(), Error> {
        for _ in 0..self.times {
            self.share.slow_add()?;
        }
        Ok(())
    }

    fn result(&mut self) -> u64 {
        SLOW_RUNS.load(Ordering::SeqCst)
    }
}

#[test]
fn a_watch_conflict_retries_and_no_update_is_lost() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = Cluster::redis(&server.url(), "share-conflict").unwrap();
    let share = Share::on(&cluster, Tally::default()).unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            SlowAdder {
                share: share.clone(),
                times: 20,
            }
            .start()
            .unwrap()
        })
        .collect();
    let runs: u64 = handles
        .into_iter()
        .map(|handle| handle.result_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(share.slow.get().unwrap(), 60, "no update was lost");
    assert!(
        runs > 60,
        "conflicting calls ran again ({runs} runs for 60 calls)"
    );
}

/// Adds one to `slow` (`INCRBY`, no transaction) as fast as it can for `for_ms`.
#[derive(Serialize, Deserialize)]
struct Hammer {
    share: Share<Tally>,
    for_ms: u64,
    done: u64,
}

#[skprocess]
impl Hammer {
    fn run(&mut self) {
        let until = Instant::now() + Duration::from_millis(self.for_ms);
        while Instant::now() < until {
            self.share.slow += 1;
            self.done += 1;
        }
    }

    fn result(&mut self) -> u64 {
        self.done
    }
}

/// Makes one `slow_bump` write, then a call (which reports the write if it was lost).
#[derive(Serialize, Deserialize)]
struct SlowWriter {
    share: Share<Tally>,
}

#[skprocess]
impl SlowWriter {
    fn run(&mut self) -> Result<(), Error> {
        self.share.slow_bump();
        self.share.counter.get().map(drop)
    }
}

/// A write has no caller to tell when it gives up, so it does not give up while others keep
/// changing what it read: it runs again until they stop. (With a bounded number of attempts,
/// as a call has, this write was dropped, recorded only as the share's last error.)
#[test]
fn a_write_under_constant_conflicts_is_applied_once_the_others_stop() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = Cluster::redis(&server.url(), "share-hammered").unwrap();
    let share = Share::on(&cluster, Tally::default()).unwrap();
    let hammers: Vec<_> = (0..2)
        .map(|_| {
            Hammer {
                share: share.clone(),
                for_ms: 8000,
                done: 0,
            }
            .start()
            .unwrap()
        })
        .collect();
    bound::until(JOIN, "the hammers started", || {
        share.slow.get().unwrap() > 0
    });
    let writer = SlowWriter {
        share: share.clone(),
    }
    .start()
    .unwrap();
    writer.result_timeout(JOIN).unwrap();
    let hammered: u64 = hammers
        .into_iter()
        .map(|hammer| hammer.result_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(
        share.slow.get().unwrap(),
        hammered + 1,
        "the share's last error: {:?}",
        share.last_error()
    );
}

#[test]
fn a_panicking_method_changes_nothing() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = Cluster::redis(&server.url(), "share-panic").unwrap();
    let start = Tally {
        counter: 5,
        results: vec![1, 2],
        ..Tally::default()
    };
    let share = Share::on(&cluster, start.clone()).unwrap();
    match share.explode_after_changes() {
        Err(Error::Panicked {
            site: PanicSite::SharedMethod { method },
            message,
            location,
            ..
        }) => {
            assert!(method.ends_with("::explode_after_changes"), "{method}");
            assert!(message.contains("exploded on purpose"), "{message}");
            assert!(location.is_some_and(|at| at.file == file!()));
        }
        other => panic!("expected the method's panic, got {other:?}"),
    }
    share.explode_quietly();
    assert_eq!(share.get().unwrap(), start, "nothing changed");
    let recorded = share.last_error().unwrap().unwrap_or_default();
    assert!(recorded.contains("without a caller waiting"), "{recorded}");
}

#[shared]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Kinds {
    small: u8,
    signed: i64,
    ratio: f64,
    name: String,
    list: Vec<String>,
    deque: VecDeque<u32>,
    map: BTreeMap<String, u32>,
    set: HashSet<u16>,
    maybe: Option<u8>,
}

/// The same operations on a share; what each call answered.
fn exercise(share: &mut Share<Kinds>) -> Vec<String> {
    let mut answers = Vec::new();
    let mut note = |answer: String| answers.push(answer);
    share.small += 200;
    share.small += 100; // overflows: recorded, the field unchanged
    share.small -= 1;
    share.small *= 1;
    share.signed -= 40;
    share.signed += 2;
    share.ratio += 0.5;
    share.ratio -= 0.25;
    share.name.push_str("ab");
    share.name += "c";
    note(format!("{:?}", share.name.len()));
    share.list.push("x".into());
    share.list.push("y".into());
    share.list.insert(0, "w".into());
    share.list.extend(["z".to_owned(), "zz".to_owned()]);
    note(format!("{:?}", share.list.pop()));
    note(format!("{:?}", share.list.remove(1)));
    note(format!("{:?}", share.list.at(1)));
    share.list.truncate(2);
    share.deque.push_back(1);
    share.deque.push_front(0);
    share.deque.push_back(2);
    note(format!("{:?}", share.deque.pop_front()));
    note(format!("{:?}", share.deque.is_empty()));
    note(format!("{:?}", share.map.insert("a".into(), 1)));
    note(format!("{:?}", share.map.insert("a".into(), 2)));
    note(format!("{:?}", share.map.remove("b")));
    share.map.extend([("b".to_owned(), 3), ("c".to_owned(), 4)]);
    note(format!("{:?}", share.map.remove("c")));
    note(format!("{:?}", share.map.contains_key("b")));
    note(format!("{:?}", share.map.at("a")));
    note(format!("{:?}", share.set.insert(4)));
    note(format!("{:?}", share.set.insert(4)));
    share.set.extend([5, 6]);
    note(format!("{:?}", share.set.remove(&5)));
    note(format!("{:?}", share.set.contains(&6)));
    note(format!("{:?}", share.set.len()));
    share.maybe.set(Some(3));
    note(format!("{:?}", share.small.get()));
    note(format!("{:?}", share.ratio.get()));
    answers
}

#[test]
fn every_field_operation_answers_and_leaves_what_the_local_share_does() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = Cluster::redis(&server.url(), "share-kinds").unwrap();
    let mut local = Share::new(Kinds::default()).unwrap();
    let mut remote = Share::on(&cluster, Kinds::default()).unwrap();
    assert_eq!(exercise(&mut remote), exercise(&mut local));
    assert_eq!(remote.get().unwrap(), local.get().unwrap());
    let recorded = remote.last_error().unwrap().unwrap_or_default();
    assert!(recorded.contains("overflow"), "{recorded}");
    let replaced = Kinds {
        name: "whole".into(),
        list: vec!["one".into()],
        ..Kinds::default()
    };
    remote.set(replaced.clone());
    assert_eq!(remote.get().unwrap(), replaced);
}

/// `+=` on an `i64` is `INCRBY`; one past `i64::MAX` the server answers an error inside the
/// pipeline: the operation fails as the local share's does (recorded, the field unchanged).
#[test]
fn an_overflow_the_server_refuses_is_recorded_and_changes_nothing() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cluster = Cluster::redis(&server.url(), "share-refused").unwrap();
    let start = Kinds {
        signed: i64::MAX,
        ..Kinds::default()
    };
    let mut local = Share::new(start.clone()).unwrap();
    let mut remote = Share::on(&cluster, start).unwrap();
    for share in [&mut local, &mut remote] {
        share.signed += 1;
        assert_eq!(share.signed.get().unwrap(), i64::MAX);
        let recorded = share.last_error().unwrap().unwrap_or_default();
        assert!(recorded.contains("overflow"), "{recorded:?}");
        share.signed -= 2;
        assert_eq!(share.signed.get().unwrap(), i64::MAX - 2);
    }
}

/// `Share::with_timeout` bounds a Redis share too: behind a link that holds every chunk for
/// 2 s, a field read, a whole read and a method under a 300 ms limit each fail with the share's
/// timeout (before, each waited out the link and answered); the same handle answers again
/// once the link is quick.
#[test]
fn a_time_limit_shorter_than_a_slow_link_ends_operations_with_the_shares_timeout() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port());
    let cluster = Cluster::redis(&proxy.url(), "share-timeout").unwrap();
    let share = Share::on(&cluster, Tally::default()).unwrap();
    let limit = Duration::from_millis(300);
    let timed = share.with_timeout(limit);
    assert_eq!(timed.counter.get().unwrap(), 0);
    proxy.slow(Duration::from_secs(2));
    let is_timeout = |e: &Error| matches!(e, Error::Timeout { limit: l, of: skprocess::error::Timed::Share } if *l == limit);
    let field = timed.counter.get();
    assert!(field.as_ref().is_err_and(is_timeout), "{field:?}");
    let whole = share.get_timeout(limit);
    assert!(
        whole.as_ref().is_err_and(is_timeout),
        "{:?}",
        whole.map(|_| ())
    );
    let method = timed.total();
    assert!(method.as_ref().is_err_and(is_timeout), "{method:?}");
    proxy.slow(Duration::ZERO);
    assert_eq!(timed.counter.get().unwrap(), 0);
    assert_eq!(timed.total().unwrap(), 0);
}

#[test]
fn a_cut_link_is_a_clear_error_and_the_share_recovers_after() {
    let _bound = bound::within(TEST_BOUND);
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port());
    let cluster = Cluster::redis(&proxy.url(), "share-cut").unwrap();
    let mut share = Share::on(&cluster, Tally::default()).unwrap();
    share.counter += 1;
    proxy.cut();
    share.counter += 1; // lost: the link is cut
    match share.counter.get() {
        Err(Error::Cluster { problem: message }) => {
            assert!(message.contains("lost"), "{message}");
            assert!(message.contains(&proxy.port().to_string()), "{message}");
        }
        other => panic!("expected a cluster error, got {other:?}"),
    }
    assert!(matches!(share.counter.get(), Err(Error::Cluster { .. })));
    proxy.heal();
    assert_eq!(share.counter.get().unwrap(), 1);
    share.counter += 1;
    assert_eq!(share.counter.get().unwrap(), 2);
    // A server that lost everything: the broken connection first, then the share is gone,
    // said so, never silently fresh.
    server.restart();
    assert!(matches!(share.counter.get(), Err(Error::Cluster { .. })));
    match share.counter.get() {
        Err(Error::Cluster { problem: message }) => assert!(message.contains("gone"), "{message}"),
        other => panic!("expected the share to be gone, got {other:?}"),
    }
    share.counter += 5;
    assert!(matches!(share.counter.get(), Err(Error::Cluster { .. })));
}
