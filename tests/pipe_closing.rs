//! A closed or dead peer is `Error::Gone { peer: Peer::PipeEnd }` on the next call, never a hang; a point moves
//! into one process; a restarted process connects its point again; sends have backpressure.

use std::time::Duration;

use skprocess::error::Peer;
use skprocess::pipe::PipeError;
use skprocess::prelude::*;
use skprocess::{Anchor, PipeConfig, Point, TrySendError};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// Waits for one message, and reports how the wait ended.
#[derive(Serialize, Deserialize)]
struct Waiter {
    pipe: Point<u32, u32>,
}

#[skprocess]
impl Waiter {
    fn run(&mut self) -> Result<(), Error> {
        // Say hello, so the parent knows the point is connected.
        self.pipe.send(0)
    }

    fn result(&mut self) -> String {
        match self.pipe.recv_timeout(BOUND) {
            Ok(Some(value)) => format!("got {value}"),
            Ok(None) => "timed out".into(),
            Err(error) => error.to_string(),
        }
    }
}

#[test]
fn the_parent_dropping_the_anchor_closes_the_childs_point() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    let handle = Waiter { pipe: point }.start().unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(0));
    drop(anchor);
    let ended = handle.result_timeout(BOUND).unwrap();
    assert_eq!(
        ended,
        Error::Gone {
            peer: Peer::PipeEnd
        }
        .to_string()
    );
}

/// Sends one message and ends.
#[derive(Serialize, Deserialize)]
struct OneShot {
    pipe: Point<u32, u32>,
}

#[skprocess]
impl OneShot {
    fn run(&mut self) -> Result<(), Error> {
        self.pipe.send(7)
    }
}

#[test]
fn a_child_that_exits_is_closed_after_its_last_message() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    let handle = OneShot { pipe: point }.start().unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(7));
    handle.result_timeout(BOUND).unwrap();
    assert!(matches!(
        anchor.recv_timeout(BOUND),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
    // Calls after that fail at once too: the process is gone for good.
    assert!(matches!(
        anchor.send(1),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
    assert!(matches!(
        anchor.try_recv(),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
}

/// Connects, then sleeps far longer than any test waits.
#[derive(Serialize, Deserialize)]
struct Sleeper {
    pipe: Point<u32, u32>,
}

#[skprocess]
impl Sleeper {
    fn run(&mut self) -> Result<(), Error> {
        self.pipe.send(1)?;
        std::thread::sleep(Duration::from_secs(600));
        Ok(())
    }
}

/// Waits for the test thread to sleep in its read by `/proc`, so Unix only.
#[cfg(unix)]
#[test]
fn a_child_killed_with_sigkill_is_closed_for_a_waiting_recv() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    let handle = Sleeper { pipe: point }.start().unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(1));
    let child = handle.pid();
    let receiver = pid::current_tid();
    let killer = std::thread::spawn(move || {
        // Kill once this test's thread sleeps in its recv below.
        bound::until(BOUND, "the test thread waits in recv", || {
            pid::thread_state(receiver) == Some('S')
        });
        pid::kill(child);
    });
    // Blocked in recv when the child dies: wakes with Closed.
    assert!(matches!(
        anchor.recv_timeout(BOUND),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
    bound::join(killer, BOUND, "the killer thread");
    assert!(handle.result_timeout(BOUND).is_err());
    assert!(matches!(
        anchor.send(2),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
}

/// Announces its pid, then waits for a word from the parent.
#[derive(Serialize, Deserialize)]
struct Holder {
    pipe: Point<u32, u32>,
}

#[skprocess]
impl Holder {
    fn run(&mut self) -> Result<(), Error> {
        self.pipe.send(std::process::id())?;
        self.pipe.recv_timeout(BOUND)?;
        Ok(())
    }
}

#[test]
fn a_point_used_by_a_second_process_is_refused_at_its_connection() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    // A copy of the point, as a user could make by serializing it twice.
    let bytes = skprocess::__private::wire::encode(&point).unwrap();
    let copy: Point<u32, u32> = skprocess::__private::wire::decode(&bytes).unwrap();
    let first = Holder { pipe: point }.start().unwrap();
    let first_pid = anchor.recv_timeout(BOUND).unwrap().unwrap();
    assert_eq!(first_pid, first.pid());
    let second = Holder { pipe: copy }.start().unwrap();
    let refused = second.result_timeout(BOUND).unwrap_err().to_string();
    assert!(
        refused.contains(&format!("already in use by process {first_pid}")),
        "{refused}"
    );
    // Nothing from the second process reached the anchor; the first still talks.
    assert_eq!(anchor.try_recv().unwrap(), None);
    anchor.send(1).unwrap();
    first.result_timeout(BOUND).unwrap();
}

/// Answers jobs; its first life crashes in the second run, before reading.
#[derive(Serialize, Deserialize)]
struct CrashOnce {
    pipe: Point<u32, u32>,
}

#[skprocess(runs = 2, lives = 2)]
impl CrashOnce {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            std::process::abort();
        }
        let job = self.pipe.recv()?;
        self.pipe.send(job * 10)
    }
}

#[test]
fn a_point_connects_again_after_its_process_is_restarted() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    let handle = CrashOnce { pipe: point }.start().unwrap();
    anchor.send(1).unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(10));
    // The first life aborts: the waiting anchor sees the end...
    assert!(matches!(
        anchor.recv_timeout(BOUND),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
    // ...and the restarted child's point connects again.
    assert!(anchor.wait_connected_timeout(BOUND).unwrap());
    anchor.send(2).unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(20));
    handle.result_timeout(BOUND).unwrap();
}

#[test]
fn a_full_pipe_makes_try_send_give_the_message_back() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point): (Anchor<Vec<u8>, u32>, Point<u32, Vec<u8>>) = Pipe::pair().unwrap();
    let chunk = vec![7u8; 16 * 1024];
    // Nobody reads: the point's queue (its socket buffer) fills up.
    let mut sent = 0;
    let full = loop {
        match anchor.try_send(chunk.clone()) {
            Ok(()) => sent += 1,
            Err(TrySendError::Full(message)) => break message,
            Err(other) => panic!("unexpected {other}"),
        }
        assert!(sent < 100_000, "the pipe never filled up");
    };
    assert_eq!(full, chunk);
    let started = std::time::Instant::now();
    let timed = anchor.send_timeout(chunk.clone(), Duration::from_millis(50));
    assert!(matches!(timed, Err(TrySendError::Full(_))));
    assert!(started.elapsed() >= Duration::from_millis(50));
    // A blocked send goes through once the reader drains the queue.
    let reader = std::thread::spawn(move || {
        let mut received = 0;
        while received <= sent {
            point
                .recv_timeout(BOUND)
                .unwrap()
                .expect("a message within the bound");
            received += 1;
        }
        received
    });
    assert!(
        anchor.send_timeout(chunk, BOUND).is_ok(),
        "the blocked send never went through"
    );
    assert_eq!(bound::join(reader, BOUND, "the reader"), sent + 1);
}

#[test]
fn the_anchor_stops_waiting_for_a_point_at_its_accept_deadline() {
    let _bound = bound::within(TEST_BOUND);
    let mut config = PipeConfig::default();
    config.accept_timeout = Duration::from_millis(100);
    let (anchor, _point) = Pipe::pair_with::<u32, u32>(config).unwrap();
    // The accept deadline is what ends this wait; the bound only catches its absence.
    let (anchor, received) =
        bound::on_thread(BOUND, "recv() on an anchor never connected", move || {
            let received = anchor.recv();
            (anchor, received)
        });
    assert!(matches!(
        received,
        Err(Error::Pipe(PipeError::NotConnected { waited: limit })) if limit == Duration::from_millis(100)
    ));
    // A shorter call timeout is just a timeout.
    assert_eq!(
        anchor.recv_timeout(Duration::from_millis(10)).unwrap(),
        None
    );
}

#[test]
fn a_message_over_the_limit_is_refused_at_the_sender() {
    let _bound = bound::within(TEST_BOUND);
    let mut config = PipeConfig::default();
    config.max_message_bytes = 64 * 1024;
    let (anchor, point) = Pipe::pair_with::<Vec<u8>, u32>(config).unwrap();
    let sender = std::thread::spawn(move || point.send(1));
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(1));
    bound::join(sender, BOUND, "the sender").unwrap();
    assert!(matches!(
        anchor.send(vec![0; 100 * 1024]),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn a_point_rebuilt_with_other_message_types_is_refused() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    let bytes = skprocess::__private::wire::encode(&point).unwrap();
    let wrong: Point<u64, u32> = skprocess::__private::wire::decode(&bytes).unwrap();
    assert!(matches!(
        wrong.send(1),
        Err(Error::Pipe(PipeError::TypeMismatch))
    ));
    // The right point still connects.
    point.send(7).unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(7));
}

/// Sends `count` large messages, each filled with its index, then ends.
#[derive(Serialize, Deserialize)]
struct BigSender {
    pipe: Point<serde_bytes::ByteBuf, u32>,
    count: u8,
}

#[skprocess]
impl BigSender {
    fn run(&mut self) -> Result<(), Error> {
        for i in 0..self.count {
            let size = 100_000 + usize::from(i) * 7_919;
            self.pipe.send(serde_bytes::ByteBuf::from(vec![i; size]))?;
        }
        Ok(())
    }
}

#[test]
fn large_messages_arrive_whole_and_in_order() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, serde_bytes::ByteBuf>().unwrap();
    let handle = BigSender {
        pipe: point,
        count: 40,
    }
    .start()
    .unwrap();
    for i in 0..40u8 {
        let message = anchor.recv_timeout(BOUND).unwrap().unwrap();
        assert_eq!(message.len(), 100_000 + usize::from(i) * 7_919);
        assert!(
            message.iter().all(|byte| *byte == i),
            "message {i} is corrupted"
        );
    }
    handle.result_timeout(BOUND).unwrap();
    assert!(matches!(
        anchor.recv_timeout(BOUND),
        Err(Error::Gone {
            peer: Peer::PipeEnd
        })
    ));
}

#[test]
fn large_and_small_sends_from_two_threads_never_interleave() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, (u8, serde_bytes::ByteBuf)>().unwrap();
    let point = std::sync::Arc::new(point);
    let senders: Vec<_> = [(1u8, 200_000usize), (2, 10)]
        .into_iter()
        .map(|(tag, size)| {
            let point = std::sync::Arc::clone(&point);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let body = serde_bytes::ByteBuf::from(vec![tag; size]);
                    point.send((tag, body)).unwrap();
                }
            })
        })
        .collect();
    let mut seen = [0; 3];
    for _ in 0..100 {
        let (tag, body) = anchor.recv_timeout(BOUND).unwrap().unwrap();
        assert!(body.iter().all(|byte| *byte == tag));
        assert_eq!(body.len(), if tag == 1 { 200_000 } else { 10 });
        seen[usize::from(tag)] += 1;
    }
    assert_eq!(seen, [0, 50, 50]);
    for sender in senders {
        bound::join(sender, BOUND, "a sender");
    }
}

/// Waits for the large send to sleep in its write by `/proc`, so Unix only.
#[cfg(unix)]
#[test]
fn try_send_does_not_wait_behind_a_send_blocked_on_a_full_peer() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point): (
        Anchor<serde_bytes::ByteBuf, u32>,
        Point<u32, serde_bytes::ByteBuf>,
    ) = Pipe::pair().unwrap();
    let anchor = std::sync::Arc::new(anchor);
    // Connect the point, then let nobody read: a large send blocks on the full socket.
    let point = bound::on_thread(BOUND, "the point's first send", move || {
        point.send(0).unwrap();
        point
    });
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(0));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let blocked = {
        let anchor = std::sync::Arc::clone(&anchor);
        std::thread::spawn(move || {
            tid_tx.send(pid::current_tid()).unwrap();
            anchor.send(serde_bytes::ByteBuf::from(vec![1u8; 8 * 1024 * 1024]))
        })
    };
    // Wait until the large send has filled the socket and sleeps in its write: nobody reads,
    // so it stays there until the point below does.
    let sender = tid_rx.recv_timeout(BOUND).unwrap();
    bound::until(BOUND, "the large send blocks on the full socket", || {
        blocked.is_finished() || pid::thread_state(sender) == Some('S')
    });
    assert!(
        !blocked.is_finished(),
        "an 8 MiB send to a reader that never reads returned"
    );
    // try_send answers at once (here: within the bound) instead of waiting for the reader.
    let (answer, answered) = std::sync::mpsc::channel();
    let trying = std::sync::Arc::clone(&anchor);
    std::thread::spawn(move || {
        let tried = trying.try_send(serde_bytes::ByteBuf::from(vec![2]));
        let _ = answer.send(matches!(tried, Err(TrySendError::Full(_))));
    });
    assert!(
        answered.recv_timeout(BOUND).unwrap(),
        "try_send did not report a full pipe"
    );
    // Reading lets the blocked send finish.
    let big = point
        .recv_timeout(BOUND)
        .unwrap()
        .expect("the large message within the bound");
    assert_eq!(big.len(), 8 * 1024 * 1024);
    bound::join(blocked, BOUND, "the large send").unwrap();
}
