//! The queue on a real Redis: each test starts its own `redis-server` on a free port; readers
//! are other processes of this test binary (`skprocess::run`), each reaching Redis through
//! its own proxy and opening the queue by the cluster's and the queue's names. The local
//! queue's rules hold: kinds and order travel, `sorted` reorders, an end stops one reader,
//! `stop` ends every reader, a full queue blocks `put`, a message in a reader's hand is
//! acknowledged by its next read or `ack`, and one a reader held when it stopped (SIGKILL) or
//! past the lease goes to another reader. Every wait is bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skprocess::cluster::Cluster;
use skprocess::prelude::*;
use skprocess::queue::{Msg, Next, QueueConfig};
use skprocess::{Queue, TrySendError};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis_server;

use proxy::Proxy;
use redis_server::RedisServer;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(180);

/// Every wait on a reader or a message is bounded by this.
const BOUND: Duration = Duration::from_secs(30);

/// A queue of `cluster` reached at `url`, with `config`.
fn open(url: &str, cluster: &str, queue: &str, config: QueueConfig) -> Queue<u64> {
    let cluster = Cluster::redis(url, cluster).expect("the cluster");
    Queue::on_with(&cluster, queue, config).expect("the queue")
}

fn config() -> QueueConfig {
    QueueConfig::default()
}

fn with_lease(lease: Duration) -> QueueConfig {
    let mut config = QueueConfig::default();
    config.lease = lease;
    config
}

/// A reader on another host: reads the queue until an end, a little slowly so that both
/// readers get messages; gives back what it read, by kind.
fn reader(url: String, cluster: String) -> BTreeMap<String, Vec<u64>> {
    let q = open(&url, &cluster, "jobs", config());
    // Connected (a read that finds nothing yet), it says so, so that both readers are there
    // before the first message.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(1)).unwrap(),
        Next::Empty
    ));
    open(&url, &cluster, "ready", config()).put(1).unwrap();
    let mut read: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for message in &q {
        std::thread::sleep(Duration::from_millis(2));
        read.entry(message.kind.unwrap_or_default())
            .or_default()
            .push(message.data);
    }
    read
}

#[test]
fn readers_on_two_hosts_share_the_messages_once_each_and_stop_ends_them() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxies = [Proxy::start(server.port()), Proxy::start(server.port())];
    let q = open(&server.url(), "two", "jobs", config());
    let readers: Vec<_> = proxies
        .iter()
        .map(|proxy| {
            skprocess::run(
                reader as fn(String, String) -> BTreeMap<String, Vec<u64>>,
                (proxy.url(), "two".to_owned()),
            )
            .unwrap()
        })
        .collect();
    let ready = open(&server.url(), "two", "ready", config());
    for _ in 0..2 {
        assert!(matches!(ready.get_timeout(BOUND).unwrap(), Next::Msg(_)));
    }
    for i in 0..300u64 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        q.put_message(Msg::new(i).kind(kind)).unwrap();
    }
    assert!(
        q.stop_timeout(&readers, BOUND).unwrap(),
        "stop ended both readers"
    );
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut per_reader = Vec::new();
    for reader in readers {
        let read = reader.join().unwrap();
        per_reader.push(read.values().map(Vec::len).sum::<usize>());
        for (kind, data) in read {
            seen.entry(kind).or_default().extend(data);
        }
    }
    for data in seen.values_mut() {
        data.sort_unstable();
    }
    assert_eq!(seen["even"], (0..300).step_by(2).collect::<Vec<u64>>());
    assert_eq!(seen["odd"], (1..300).step_by(2).collect::<Vec<u64>>());
    assert!(
        per_reader.iter().all(|&n| n > 0),
        "both read: {per_reader:?}"
    );
    // Nothing left, and an end stops exactly one read.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)).unwrap(),
        Next::Empty
    ));
    q.put_end().unwrap();
    assert!(q.get().unwrap().is_none());
}

/// Writes `count` messages in reverse order from another host, then one end.
fn writer(url: String, cluster: String, count: u64) {
    let q = open(&url, &cluster, "sorted", config());
    q.put_many((0..count).rev().map(|i| Msg::new(i * 10).order(i)))
        .unwrap();
    q.put_end().unwrap();
}

#[test]
fn order_travels_and_sorted_reads_in_order_and_a_handle_travels_too() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port());
    let q = open(&server.url(), "order", "sorted", config());
    let mut written = skprocess::run(
        writer as fn(String, String, u64),
        (proxy.url(), "order".to_owned(), 50u64),
    )
    .unwrap();
    written
        .join_timeout(BOUND)
        .unwrap()
        .expect("the writer ended");
    let sorted: Vec<u64> = q.sorted().map(|m| m.data).collect();
    assert_eq!(sorted, (0..50).map(|i| i * 10).collect::<Vec<u64>>());
    // A handle sent to another process reaches the same queue.
    let sent = q.clone();
    let mut echo = skprocess::run(
        |q: Queue<u64>| {
            q.put(7).unwrap();
            q.put(8).unwrap();
        },
        (sent,),
    )
    .unwrap();
    echo.join_timeout(BOUND).unwrap().expect("the echo ended");
    let items: Vec<u64> = q.items().unwrap().iter().map(|m| m.data).collect();
    assert_eq!(items, [7, 8]);
}

#[test]
fn a_full_queue_blocks_put_until_a_read_and_a_large_message_is_too_large() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut config = QueueConfig::default();
    config.capacity = 3;
    config.max_message_bytes = 1024;
    let cluster = Cluster::redis(&server.url(), "full").unwrap();
    let q: Queue<Vec<u8>> = Queue::on_with(&cluster, "small", config.clone()).unwrap();
    for _ in 0..3 {
        q.put(vec![1]).unwrap();
    }
    match q.put_timeout(vec![2], Duration::from_millis(300)) {
        Err(TrySendError::Full(data)) => assert_eq!(data, [2]),
        other => panic!("a full queue gave {other:?}"),
    }
    // A message in a reader's hand does not count: one read makes room.
    let other = Queue::<Vec<u8>>::on_with(&cluster, "small", config).unwrap();
    let putting = std::thread::spawn(move || other.put(vec![3]));
    assert_eq!(q.get().unwrap().map(|m| m.data), Some(vec![1]));
    putting.join().unwrap().unwrap();
    match q.put_timeout(vec![0; 2048], Duration::from_millis(300)) {
        Err(TrySendError::Failed(Error::TooLarge { limit: 1024, .. })) => {}
        other => panic!("a large message gave {other:?}"),
    }
    let rest: Vec<Vec<u8>> = q.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(rest, [vec![1], vec![1], vec![3]]);
}

/// Takes messages from `jobs` and reports each on `seen`: acknowledges the first, keeps the
/// second in hand and sleeps (a reader that hangs on a message).
fn holder(url: String, cluster: String, lease_ms: u64) {
    let lease = if lease_ms == 0 {
        Duration::MAX
    } else {
        Duration::from_millis(lease_ms)
    };
    let q = open(&url, &cluster, "jobs", with_lease(lease));
    let seen = open(&url, &cluster, "seen", config());
    let first = q.get().unwrap().unwrap();
    q.ack().unwrap();
    seen.put(first.data).unwrap();
    let second = q.get().unwrap().unwrap();
    seen.put(second.data).unwrap();
    std::thread::sleep(Duration::from_secs(3600));
}

/// Waits for the next report of a holder.
fn report(seen: &Queue<u64>) -> u64 {
    match seen.get_timeout(BOUND).unwrap() {
        Next::Msg(message) => message.data,
        other => panic!("no report from the holder: {other:?}"),
    }
}

#[test]
fn a_message_held_past_the_lease_goes_to_another_reader_and_an_acknowledged_one_does_not() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port());
    let lease = Duration::from_millis(500);
    let q = open(&server.url(), "lease", "jobs", with_lease(lease));
    let seen = open(&server.url(), "lease", "seen", config());
    q.put(1).unwrap();
    q.put(2).unwrap();
    let holder = skprocess::run(
        holder as fn(String, String, u64),
        (proxy.url(), "lease".to_owned(), 500u64),
    )
    .unwrap();
    assert_eq!(report(&seen), 1);
    assert_eq!(report(&seen), 2);
    // The holder still runs and holds 2: past the lease, this reader gets it.
    let started = Instant::now();
    match q.get_timeout(BOUND).unwrap() {
        Next::Msg(message) => assert_eq!(message.data, 2),
        other => panic!("the held message did not come back: {other:?}"),
    }
    assert!(holder.is_alive(), "redelivered while its reader lives");
    assert!(started.elapsed() >= lease / 2, "not before the lease");
    q.ack().unwrap();
    // 1 was acknowledged, 2 now too: nothing more comes, even after several leases.
    assert!(matches!(q.get_timeout(lease * 4).unwrap(), Next::Empty));
    holder.kill().unwrap();
}

#[test]
fn a_reader_killed_with_a_message_in_hand_gives_it_to_another_reader() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port());
    let q = open(&server.url(), "kill", "jobs", config());
    let seen = open(&server.url(), "kill", "seen", config());
    q.put(1).unwrap();
    q.put(2).unwrap();
    let holder = skprocess::run(
        holder as fn(String, String, u64),
        (proxy.url(), "kill".to_owned(), 0u64),
    )
    .unwrap();
    assert_eq!(report(&seen), 1);
    assert_eq!(report(&seen), 2);
    // Without a lease, a living reader keeps what it holds (its process touches it) …
    assert!(matches!(
        q.get_timeout(skprocess::cluster::HOST_TTL + Duration::from_secs(2))
            .unwrap(),
        Next::Empty
    ));
    // … and a killed one gives it back.
    holder.kill().unwrap();
    match q.get_timeout(BOUND).unwrap() {
        Next::Msg(message) => assert_eq!(message.data, 2),
        other => panic!("the killed reader's message did not come back: {other:?}"),
    }
    q.ack().unwrap();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(300)).unwrap(),
        Next::Empty
    ));
}

#[test]
fn a_restarted_server_is_a_clear_error_then_the_queue_works_again() {
    let _bound = bound::within(TEST_BOUND);
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let q = open(&server.url(), "restart", "jobs", config());
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap().map(|m| m.data), Some(1));
    server.restart();
    // The first call on the broken connection says what happened …
    match q.get_timeout(Duration::from_millis(200)) {
        Err(Error::Cluster { problem }) => {
            assert!(problem.contains("redis at"), "{problem}");
        }
        other => panic!("a read across a restart gave {other:?}"),
    }
    // … and the next ones work on the new server (which lost everything, the group too).
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)).unwrap(),
        Next::Empty
    ));
    q.put(3).unwrap();
    match q.get_timeout(BOUND).unwrap() {
        Next::Msg(message) => assert_eq!(message.data, 3),
        other => panic!("after the restart: {other:?}"),
    }
    // A reader waiting when the server goes away gets an error, not a hang; once the
    // server is back, its reads work again.
    let reading = {
        let q = q.clone();
        std::thread::spawn(move || {
            let first = q.get_timeout(BOUND).map(|_| ());
            let deadline = Instant::now() + BOUND;
            loop {
                match q.get_timeout(Duration::from_millis(200)) {
                    Ok(Next::Msg(message)) => return (first, message.data),
                    Ok(_) | Err(Error::Cluster { .. }) if Instant::now() < deadline => {}
                    other => panic!("the reader did not recover: {other:?}"),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    server.restart();
    let deadline = Instant::now() + BOUND;
    while !reading.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the reader hung across a restart"
        );
        if q.put(4).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (first, data) = reading.join().unwrap();
    assert!(matches!(first, Err(Error::Cluster { .. })), "{first:?}");
    assert_eq!(data, 4);
}

#[test]
fn a_thread_that_ends_or_an_iteration_stopped_early_acknowledges_what_it_took() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start() else {
        return;
    };
    let lease = Duration::from_millis(300);
    let q = open(&server.url(), "ends", "jobs", with_lease(lease));
    q.put(1).unwrap();
    q.put(2).unwrap();
    let taker = q.clone();
    let taken = std::thread::spawn(move || taker.get().unwrap().map(|m| m.data))
        .join()
        .unwrap();
    assert_eq!(taken, Some(1));
    let first = q.iter().next().map(|m| m.data);
    assert_eq!(first, Some(2));
    // Neither comes back to another reader, even after several leases: both were
    // acknowledged (this thread's by the iteration's end, not by a read of its own).
    let other = q.clone();
    let later = std::thread::spawn(move || {
        other.get_timeout(lease * 5).map(|next| match next {
            Next::Msg(message) => Some(message.data),
            _ => None,
        })
    });
    assert_eq!(later.join().unwrap().unwrap(), None);
}
