//! The cross-process path inside one process: a handle that went through serialization has
//! no broker and talks to it over its socket, exactly as in another process (threads stand
//! for processes; a thread's connection closes when it ends, like a dead process's).

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

const BOUND: Duration = Duration::from_secs(20);

/// Joins a thread, failing the test if it has not ended within [`BOUND`].
trait JoinBounded<T> {
    fn join_bounded(self) -> T;
}

fn wait_finished(finished: impl Fn() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !finished() {
        assert!(Instant::now() < deadline, "a thread did not end in time");
        thread::sleep(Duration::from_millis(1));
    }
}

impl<T> JoinBounded<T> for thread::JoinHandle<T> {
    fn join_bounded(self) -> T {
        wait_finished(|| self.is_finished());
        self.join().unwrap()
    }
}

impl<T> JoinBounded<T> for thread::ScopedJoinHandle<'_, T> {
    fn join_bounded(self) -> T {
        wait_finished(|| self.is_finished());
        self.join().unwrap()
    }
}

fn remote<T>(queue: &Queue<T>) -> Queue<T> {
    frame::decode_owned(&frame::encode(queue).unwrap()).unwrap()
}

/// Waits (bounded) until `len` messages wait: the broker handles a closed connection or a
/// release on its own thread.
fn wait_for_len<T: QueueData>(queue: &Queue<T>, len: usize) {
    let deadline = Instant::now() + BOUND;
    while queue.len() != Some(len) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
}

fn read_all_remote(queue: &Queue<u64>) -> Vec<u64> {
    queue.iter().map(|message| message.data).collect()
}

#[test]
fn two_remote_readers_share_every_message_exactly_once_then_stop_at_their_ends() {
    let queue: Queue<u64> = Queue::new().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let handle = remote(&queue);
            thread::spawn(move || read_all_remote(&handle))
        })
        .collect();
    for i in 0..10_000 {
        queue.put(i).unwrap();
    }
    queue.put_end().unwrap();
    queue.put_end().unwrap();
    let mut seen: Vec<u64> = readers
        .into_iter()
        .flat_map(|reader| reader.join_bounded())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn remote_puts_with_kinds_and_orders_come_back_sorted() {
    let queue: Queue<u64> = Queue::new().unwrap();
    let handle = remote(&queue);
    thread::spawn(move || {
        for i in (0..20).rev() {
            let kind = if i % 2 == 0 { "EVEN" } else { "ODD" };
            handle
                .put_message(Msg::new(i * 10).kind(kind).order(i))
                .unwrap();
        }
    })
    .join_bounded();
    let items = queue.items_sorted().unwrap();
    assert_eq!(
        items.iter().map(|m| m.data).collect::<Vec<_>>(),
        (0..20).map(|i| i * 10).collect::<Vec<_>>()
    );
    assert_eq!(items[3].kind.as_deref(), Some("ODD"));
}

#[test]
fn a_reader_thread_that_takes_one_message_and_ends_has_it_acknowledged() {
    let queue: Queue<u64> = Queue::new().unwrap();
    for i in 0..3 {
        queue.put(i).unwrap();
    }
    let handle = remote(&queue);
    // The thread reads one message and ends cleanly (its handle and its link are dropped):
    // the one-job-per-reader pattern. A crash is tested with real processes.
    let first = thread::spawn(move || handle.get().unwrap().unwrap().data).join_bounded();
    assert_eq!(first, 0);
    let rest: Vec<_> = queue.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(rest, [1, 2], "the message taken did not come back");
}

#[test]
fn a_reader_that_stops_iterating_gives_back_only_what_it_prefetched() {
    let queue: Queue<u64> = Queue::new().unwrap();
    for i in 0..10 {
        queue.put(i).unwrap();
    }
    let handle = remote(&queue);
    let read = thread::spawn(move || {
        let read: Vec<u64> = handle.iter().take(2).map(|m| m.data).collect();
        // The handle is still alive: the prefetched rest went back when the iterator did.
        let left = handle.get().unwrap().unwrap().data;
        (read, left)
    })
    .join_bounded();
    assert_eq!(read, (vec![0, 1], 2));
    let rest: Vec<_> = queue.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(rest, (3..10).collect::<Vec<_>>());
}

#[test]
fn a_dropped_queue_is_a_clear_error_for_a_waiting_remote_reader() {
    let queue: Queue<u64> = Queue::new().unwrap();
    let handle = remote(&queue);
    let started = Instant::now();
    let reader = thread::spawn(move || handle.get());
    thread::sleep(Duration::from_millis(100));
    drop(queue);
    let result = reader.join_bounded();
    assert!(
        matches!(
            result,
            Err(Error::Gone {
                peer: crate::error::Peer::Queue
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < BOUND);
}

#[test]
fn a_message_of_the_wrong_type_is_a_clear_error_and_the_next_one_still_arrives() {
    let queue: Queue<bool> = Queue::new().unwrap();
    let wrong: Queue<u8> = frame::decode_owned(&frame::encode(&queue).unwrap()).unwrap();
    thread::spawn(move || wrong.put(200).unwrap()).join_bounded();
    queue.put(true).unwrap();
    let reader = remote(&queue);
    let error = reader.get().unwrap_err();
    assert!(
        error.to_string().contains("could not be decoded as `bool`"),
        "{error}"
    );
    assert!(reader.get().unwrap().unwrap().data);
}

#[test]
fn a_message_over_the_limit_is_refused_at_put_and_the_queue_goes_on() {
    let config = QueueConfig {
        max_message_bytes: 1024,
        ..QueueConfig::default()
    };
    let queue: Queue<Vec<u8>> = Queue::with_config(config).unwrap();
    let handle = remote(&queue);
    let refused = thread::spawn(move || {
        let refused = handle.put(vec![7; 100_000]);
        handle.put(vec![1, 2, 3]).unwrap();
        refused
    })
    .join_bounded();
    assert!(
        matches!(refused, Err(Error::TooLarge { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        queue.put(vec![0; 5000]),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(queue.items().unwrap()[0].data, [1, 2, 3]);
}

#[test]
fn a_full_queue_gives_a_remote_try_put_back_and_a_timed_put_waits_for_room() {
    let config = QueueConfig {
        capacity: 2,
        ..QueueConfig::default()
    };
    let queue: Queue<u64> = Queue::with_config(config).unwrap();
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    assert!(matches!(queue.try_put(3), Err(TrySendError::Full(3))));
    let handle = remote(&queue);
    let putter = thread::spawn(move || {
        let refused = handle.try_put(4);
        let waited = handle.put_timeout(5, BOUND);
        (refused, waited)
    });
    thread::sleep(Duration::from_millis(200));
    assert!(queue.get().unwrap().is_some());
    let (refused, waited) = putter.join_bounded();
    assert!(matches!(refused, Err(TrySendError::Full(4))));
    assert!(waited.is_ok());
    let rest: Vec<_> = queue.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(rest, [2, 5]);
}

#[test]
fn prefetch_leaves_work_for_a_second_slow_reader() {
    let queue: Queue<u64> = Queue::new().unwrap();
    let registered = Arc::new(Barrier::new(3));
    let ready = Arc::new(Barrier::new(3));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let handle = remote(&queue);
            let registered = Arc::clone(&registered);
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                // Both readers are known to the broker before anything is put.
                assert!(matches!(
                    handle.get_timeout(Duration::from_millis(1)).unwrap(),
                    Next::Empty
                ));
                registered.wait();
                ready.wait();
                handle
                    .iter()
                    .inspect(|_| thread::sleep(Duration::from_millis(5)))
                    .count()
            })
        })
        .collect();
    // Everything waits before either reader fetches: the first one must not take it all.
    registered.wait();
    for i in 0..40 {
        queue.put(i).unwrap();
    }
    queue.put_end().unwrap();
    queue.put_end().unwrap();
    ready.wait();
    let counts: Vec<usize> = readers.into_iter().map(|r| r.join_bounded()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    assert!(counts.iter().all(|&count| count >= 10), "{counts:?}");
}

#[test]
fn an_iteration_left_early_gives_its_prefetched_messages_back() {
    let queue: Queue<u64> = Queue::new().unwrap();
    for i in 0..10 {
        queue.put(i).unwrap();
    }
    let handle = remote(&queue);
    let (first, handle) = thread::spawn(move || {
        let first = handle.iter().next().map(|message| message.data);
        (first, handle)
    })
    .join_bounded();
    assert_eq!(first, Some(0));
    wait_for_len(&queue, 9);
    assert_eq!(queue.len(), Some(9));
    drop(handle);
}

#[test]
fn a_local_queue_carries_data_that_cannot_be_serialized_between_threads() {
    let queue: LocalQueue<std::cell::Cell<u64>> = Queue::local();
    for i in 0..100 {
        queue.put(std::cell::Cell::new(i)).unwrap();
    }
    let sum: u64 = thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| queue.iter().map(|m| m.data.get()).sum::<u64>()))
            .collect();
        for _ in 0..3 {
            queue.put_end().unwrap();
        }
        workers.into_iter().map(|w| w.join_bounded()).sum()
    });
    assert_eq!(sum, 4950);
}

#[test]
fn remote_put_many_arrives_in_order_across_batches() {
    let config = QueueConfig {
        max_message_bytes: 1024,
        capacity: 50,
        ..QueueConfig::default()
    };
    let queue: Queue<Vec<u8>> = Queue::with_config(config).unwrap();
    let handle = remote(&queue);
    // More than the capacity and more than one frame (64 KiB): the broker waits for room.
    let putter = thread::spawn(move || {
        handle.put_many((0..200u32).map(|i| Msg::new(vec![i as u8; 900]).order(u64::from(i))))
    });
    let mut read = Vec::new();
    while read.len() < 200 {
        match queue.get_timeout(BOUND).unwrap() {
            Next::Msg(message) => read.push(message.order.unwrap()),
            other => panic!("{other:?}"),
        }
    }
    putter.join_bounded().unwrap();
    assert_eq!(read, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_malformed_request_ends_only_its_connection_and_returns_what_it_held() {
    use crate::protocol::queue::{Reply, Request};
    use crate::transport::frame::FrameReader;
    let queue: Queue<u64> = Queue::new().unwrap();
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    let connection = crate::transport::server::connect(&queue.endpoint, queue.max_frame).unwrap();
    let fetch = Request::Fetch {
        ack_through: None,
        max: 1,
        wait_ms: Some(1000),
    };
    connection.send(&fetch).unwrap();
    let mut replies = FrameReader::new(queue.max_frame);
    let mut stream = connection.stream();
    let frame = replies.read_frame(&mut stream).unwrap().unwrap();
    let reply: Reply = frame::decode(frame.bytes()).unwrap();
    assert!(matches!(reply, Reply::Batch { count: 1, .. }), "{reply:?}");
    assert_eq!(queue.len(), Some(1));
    // Not a request: the broker hangs up on this peer, and its leased message comes back.
    connection.send_with_payload(&[], &[0xff; 7]).unwrap();
    assert!(matches!(replies.read_frame(&mut stream), Ok(None) | Err(_)));
    wait_for_len(&queue, 2);
    let items: Vec<_> = queue.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(items, [1, 2]);
}

/// `put_many_timeout` on a capped queue that stays full: it times out, gives back the
/// messages it did not put, in order, and those it put are in the queue exactly once — from
/// the creating process (one put at a time), from another process's handle (one batch, the
/// broker saying how far it got) and on a thread-only queue.
#[test]
fn put_many_timeout_on_a_full_queue_gives_back_what_it_did_not_put() {
    let limit = Duration::from_millis(100);
    let batch = |from: u64| (from..from + 5).map(Msg::new);
    let data = |messages: Vec<Msg<u64>>| messages.into_iter().map(|m| m.data).collect::<Vec<_>>();
    let queue: Queue<u64> = Queue::with_config(QueueConfig {
        capacity: 3,
        ..QueueConfig::default()
    })
    .unwrap();
    let far = remote(&queue);
    let given_back = [
        queue.put_many_timeout(batch(0), limit),
        // The first message already finds the queue full: nothing goes in.
        far.put_many_timeout(batch(10), limit),
    ];
    let given_back: Vec<_> = given_back
        .into_iter()
        .map(|outcome| match outcome {
            Err(TrySendError::Full(unsent)) => data(unsent),
            other => panic!("expected the unsent messages back, got {other:?}"),
        })
        .collect();
    assert_eq!(given_back, [vec![3, 4], vec![10, 11, 12, 13, 14]]);
    // Room for two more, over the remote handle: a batch the broker takes in part.
    let taken: Vec<u64> = (0..2).map(|_| queue.get().unwrap().unwrap().data).collect();
    assert_eq!(taken, [0, 1]);
    match far.put_many_timeout(batch(20), limit) {
        Err(TrySendError::Full(unsent)) => assert_eq!(data(unsent), [22, 23, 24]),
        other => panic!("expected the unsent messages back, got {other:?}"),
    }
    queue.put_end().unwrap();
    let rest: Vec<u64> = queue.iter().map(|m| m.data).collect();
    assert_eq!(rest, [2, 20, 21]);
    // Nothing given back when everything fits, with the limit too.
    let roomy: Queue<u64> = Queue::new().unwrap();
    remote(&roomy).put_many_timeout(batch(0), limit).unwrap();
    assert_eq!(roomy.len(), Some(5));

    let local = LocalQueue::with_capacity(3);
    match local.put_many_timeout(batch(0), limit) {
        Err(TrySendError::Full(unsent)) => assert_eq!(data(unsent), [3, 4]),
        other => panic!("expected the unsent messages back, got {other:?}"),
    }
    local.put_end().unwrap();
    assert_eq!(local.iter().map(|m| m.data).collect::<Vec<_>>(), [0, 1, 2]);
}
