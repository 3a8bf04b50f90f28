//! What a `Queue` delivers to readers in other processes, in one sentence: a message handed
//! to user code is acknowledged when that reader takes its next message, calls `ack`, drops
//! its handle or its process exits cleanly; a crash redelivers only the message in hand and
//! those fetched but not yet handed; a reader silent past the queue's lease gives back what
//! it holds. Real processes, real signals, bounded waits.

use std::collections::HashMap;
use std::time::Duration;

use skprocess::Queue;
use skprocess::prelude::*;
use skprocess::queue::{Msg, Next};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(240);
/// Every wait on a child is bounded.
const BOUND: Duration = Duration::from_secs(60);

/// One job per process: takes one message, records it, exits cleanly.
fn one_shot(q: Queue<u64>, out: Queue<u64>) {
    if let Ok(Some(message)) = q.get() {
        out.put(message.data).unwrap();
    }
}

#[test]
fn three_one_shot_children_take_three_different_messages_and_the_queue_ends_empty() {
    let _bound = bound::within(TEST_BOUND);
    let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    for i in 1..=3 {
        q.put(i).unwrap();
    }
    for _ in 0..3 {
        let mut worker = skprocess::run(
            one_shot as fn(Queue<u64>, Queue<u64>),
            (q.clone(), out.clone()),
        )
        .unwrap();
        worker
            .join_timeout(BOUND)
            .unwrap()
            .expect("a one-shot child hung");
    }
    let mut taken: Vec<u64> = out.items().unwrap().iter().map(|m| m.data).collect();
    taken.sort_unstable();
    assert_eq!(taken, [1, 2, 3], "each child took a different message");
    // Nothing comes back once the children are gone: every message was acknowledged.
    assert!(matches!(
        q.get_timeout(Duration::from_millis(500)).unwrap(),
        Next::Empty
    ));
    assert_eq!(q.len(), Some(0));
}

/// Records every message it is handed on `out` (its `order`), and SIGKILLs itself when it is
/// handed message number `die_at`, before doing anything with it.
#[derive(Serialize, Deserialize)]
struct Doomed {
    q: Queue<u64>,
    out: Queue<u64>,
    die_at: u64,
}

#[skprocess]
impl Doomed {
    fn run(&mut self) {
        for (n, message) in (1..).zip(&self.q) {
            self.out.put(message.data).unwrap();
            if n == self.die_at {
                pid::kill(std::process::id());
            }
        }
    }
}

/// Records every message it is handed until the end.
fn recorder(q: Queue<u64>, out: Queue<u64>) {
    for message in &q {
        out.put(message.data).unwrap();
    }
}

#[test]
fn a_reader_sigkilled_on_its_100th_message_causes_at_most_one_duplicate() {
    let _bound = bound::within(TEST_BOUND);
    const N: u64 = 1000;
    let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    for i in 0..N {
        q.put(i).unwrap();
    }
    let doomed = Doomed {
        q: q.clone(),
        out: out.clone(),
        die_at: 100,
    }
    .start()
    .unwrap();
    assert!(doomed.wait_timeout(BOUND), "the doomed reader did not die");
    assert!(
        doomed.result_timeout(BOUND).is_err(),
        "the kill did not land"
    );
    let survivor = skprocess::run(
        recorder as fn(Queue<u64>, Queue<u64>),
        (q.clone(), out.clone()),
    )
    .unwrap();
    assert!(
        q.stop_timeout(&survivor, BOUND).unwrap(),
        "the survivor hung"
    );
    let mut deliveries: HashMap<u64, u32> = HashMap::new();
    for message in out.items().unwrap() {
        *deliveries.entry(message.data).or_default() += 1;
    }
    assert_eq!(deliveries.len() as u64, N, "a message was lost");
    let duplicated: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.len() <= 1 && duplicated.iter().all(|(_, n)| **n == 2),
        "{} messages came twice or more: {duplicated:?}",
        duplicated.len()
    );
}

/// Takes one message, says which, optionally acknowledges it, then SIGKILLs itself.
fn take_then_die(q: Queue<u64>, out: Queue<u64>, ack: bool) {
    let Ok(Some(message)) = q.get() else {
        return;
    };
    if ack {
        q.ack().unwrap();
    }
    out.put(message.data).unwrap();
    pid::kill(std::process::id());
}

#[test]
fn an_acknowledged_message_survives_its_readers_crash_and_an_unacknowledged_one_comes_back() {
    let _bound = bound::within(TEST_BOUND);
    for ack in [true, false] {
        let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
        q.put(7).unwrap();
        let mut worker = skprocess::run(
            take_then_die as fn(Queue<u64>, Queue<u64>, bool),
            (q.clone(), out.clone(), ack),
        )
        .unwrap();
        assert!(worker.join_timeout(BOUND).is_err(), "the kill did not land");
        let Next::Msg(taken) = out.get_timeout(BOUND).unwrap() else {
            panic!("the reader took nothing");
        };
        assert_eq!(taken.data, 7);
        // The broker learns of the crash when the connection ends; give it that long.
        let back = q.get_timeout(Duration::from_secs(2)).unwrap();
        match ack {
            true => assert!(matches!(back, Next::Empty), "acknowledged, yet redelivered"),
            false => assert!(
                matches!(back, Next::Msg(Msg { data: 7, .. })),
                "not acknowledged, yet not redelivered: {back:?}"
            ),
        }
    }
}

/// Takes one message, says which and its pid, then waits (to be stopped).
#[cfg(unix)]
fn take_then_wait(q: Queue<u64>, out: Queue<u64>) {
    let Ok(Some(message)) = q.get() else {
        return;
    };
    out.put_message(Msg::new(message.data).order(u64::from(std::process::id())))
        .unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

/// Stops the reader with SIGSTOP, so Unix only.
#[cfg(unix)]
#[test]
fn a_reader_stopped_past_the_lease_gives_its_message_back() {
    let _bound = bound::within(TEST_BOUND);
    let mut config = skprocess::queue::QueueConfig::default();
    config.lease = Duration::from_millis(300);
    let q = Queue::with_config(config).unwrap();
    let out = Queue::new().unwrap();
    q.put(41).unwrap();
    q.put(42).unwrap();
    let worker = skprocess::run(
        take_then_wait as fn(Queue<u64>, Queue<u64>),
        (q.clone(), out.clone()),
    )
    .unwrap();
    let Next::Msg(taken) = out.get_timeout(BOUND).unwrap() else {
        panic!("the reader took nothing");
    };
    let reader = u32::try_from(taken.order.unwrap()).unwrap();
    pid::signal(reader, libc::SIGSTOP);
    bound::until(BOUND, "the reader is stopped", || pid::stopped(reader));
    let mut back: Vec<u64> = Vec::new();
    while back.len() < 2 {
        match q.get_timeout(BOUND).unwrap() {
            Next::Msg(message) => back.push(message.data),
            other => panic!("the stopped reader kept its message: {other:?}"),
        }
    }
    back.sort_unstable();
    assert_eq!(back, [41, 42]);
    pid::signal(reader, libc::SIGCONT);
    worker.kill().unwrap();
}

/// Says its pid, waits for one message, works on it a while (within the lease), says which.
#[cfg(unix)]
fn wait_then_work(q: Queue<u64>, out: Queue<u64>) {
    out.put(u64::from(std::process::id())).unwrap();
    if let Ok(Some(message)) = q.get() {
        std::thread::sleep(Duration::from_millis(150));
        out.put(message.data).unwrap();
    }
}

/// Sees the reader sleep in its wait through `/proc`, so Unix only.
#[cfg(unix)]
#[test]
fn a_reader_that_waited_longer_than_the_lease_keeps_what_it_is_then_given() {
    let _bound = bound::within(TEST_BOUND);
    let lease = Duration::from_millis(300);
    let mut config = skprocess::queue::QueueConfig::default();
    config.lease = lease;
    let q = Queue::with_config(config).unwrap();
    let out = Queue::new().unwrap();
    let mut worker = skprocess::run(
        wait_then_work as fn(Queue<u64>, Queue<u64>),
        (q.clone(), out.clone()),
    )
    .unwrap();
    let Next::Msg(pid) = out.get_timeout(BOUND).unwrap() else {
        panic!("the reader did not start");
    };
    let reader = u32::try_from(pid.data).unwrap();
    bound::until(BOUND, "the reader waits in get()", || {
        pid::state(reader) == Some('S')
    });
    // Its wait outlasts the lease several times over before anything arrives.
    let waited = std::time::Instant::now();
    bound::until(BOUND, "the wait outlasts the lease", || {
        waited.elapsed() >= lease * 3
    });
    q.put(5).unwrap();
    let Next::Msg(done) = out.get_timeout(BOUND).unwrap() else {
        panic!("the reader did not finish its message");
    };
    assert_eq!(done.data, 5);
    worker
        .join_timeout(BOUND)
        .unwrap()
        .expect("the reader hung");
    assert!(
        matches!(
            q.get_timeout(Duration::from_millis(500)).unwrap(),
            Next::Empty
        ),
        "the message was taken back from a reader that had just been given it"
    );
}
