//! `Queue` across real processes (issue 10, items 1 and 2): readers in `#[skprocess]`
//! processes summing until their end, `stop` waiting for them, readers killed with SIGKILL
//! mid-stream whose messages go to other readers, a closed queue as a clear error in a
//! reader, and threads of one child that do not wait behind each other's reads.

use std::collections::HashMap;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use skprocess::Queue;
use skprocess::prelude::*;
use skprocess::queue::Msg;
#[cfg(unix)]
use skprocess::queue::Next;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(60);

/// ezq's worker: adds up the messages until its end, puts the total on `out`.
#[derive(Serialize, Deserialize)]
struct Summer {
    q: Queue<u64>,
    out: Queue<u64>,
}

#[skprocess]
impl Summer {
    fn run(&mut self) {
        let total: u64 = self.q.iter().map(|m| m.data).sum();
        self.out.put(total).unwrap();
    }
}

#[test]
fn four_reader_processes_sum_a_thousand_messages_to_499500() {
    let _bound = bound::within(TEST_BOUND);
    let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    let readers: Vec<_> = (0..4)
        .map(|_| {
            Summer {
                q: q.clone(),
                out: out.clone(),
            }
            .start()
            .unwrap()
        })
        .collect();
    for i in 0..1000 {
        q.put(i).unwrap();
    }
    assert!(q.stop_timeout(&readers, BOUND).unwrap(), "a reader hung");
    let totals = out.items().unwrap();
    assert_eq!(totals.len(), 4);
    assert_eq!(totals.iter().map(|m| m.data).sum::<u64>(), 499_500);
}

/// Records every message it reads on `out` under the message's id (its `order`), slowly, so
/// a kill lands while it holds messages.
#[derive(Serialize, Deserialize)]
struct Recorder {
    q: Queue<u64>,
    out: Queue<u64>,
}

#[skprocess]
impl Recorder {
    fn run(&mut self) {
        for message in &self.q {
            std::thread::sleep(Duration::from_micros(200));
            let recorded = Msg::new(message.data * 3).order(message.order.unwrap_or(u64::MAX));
            self.out.put_message(recorded).unwrap();
        }
    }
}

fn start_recorders(q: &Queue<u64>, out: &Queue<u64>, n: usize) -> Vec<Handle<Recorder>> {
    (0..n)
        .map(|_| {
            Recorder {
                q: q.clone(),
                out: out.clone(),
            }
            .start()
            .unwrap()
        })
        .collect()
}

/// Reads `out` on a thread into a map keyed by message id (idempotent: a duplicate overwrites
/// the same value) until `out` ends.
fn collect_results(out: &Queue<u64>) -> std::thread::JoinHandle<(HashMap<u64, u64>, usize)> {
    let out = out.clone();
    std::thread::spawn(move || {
        let mut results = HashMap::new();
        let mut deliveries = 0;
        for message in out.iter() {
            deliveries += 1;
            results.insert(message.order.unwrap(), message.data);
        }
        (results, deliveries)
    })
}

#[test]
fn readers_killed_with_sigkill_mid_stream_lose_no_message() {
    let _bound = bound::within(TEST_BOUND);
    const N: u64 = 3000;
    let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    let collector = collect_results(&out);
    let doomed = start_recorders(&q, &out, 2);
    let survivors = start_recorders(&q, &out, 1);
    for i in 0..N {
        q.put_message(Msg::new(i).order(i)).unwrap();
    }
    // Kill the two once the stream is flowing (some messages read, many still waiting).
    bound::until(BOUND, "a third of the messages is read", || {
        q.len().unwrap() <= (N as usize) * 2 / 3
    });
    for handle in &doomed {
        pid::kill(handle.pid());
    }
    assert!(doomed.iter().all(|handle| handle.wait_timeout(BOUND)));
    let replacements = start_recorders(&q, &out, 2);
    let readers: Vec<_> = survivors.iter().chain(&replacements).collect();
    assert!(q.stop_timeout(&readers, BOUND).unwrap(), "a reader hung");
    out.put_end().unwrap();
    let (results, deliveries) = bound::join(collector, BOUND, "the collector");
    assert_eq!(results.len() as u64, N, "a message was lost");
    assert_eq!(results.values().sum::<u64>(), 3 * N * (N - 1) / 2);
    assert!(deliveries as u64 >= N);
    eprintln!("{deliveries} deliveries of {N} messages");
    for handle in doomed {
        assert!(
            handle.result_timeout(BOUND).is_err(),
            "the kill did not land"
        );
    }
}

/// Waits for a message on a queue whose creator drops it meanwhile.
#[cfg(unix)]
#[derive(Serialize, Deserialize)]
struct Waiter {
    q: Queue<u64>,
    started: Queue<u64>,
}

#[cfg(unix)]
#[skprocess]
impl Waiter {
    fn run(&mut self) {}

    fn result(&mut self) -> String {
        // The thread that waits below: the parent watches it go to sleep in `get`.
        self.started.put(u64::from(pid::current_tid())).unwrap();
        match self.q.get() {
            Ok(message) => format!("unexpected: {message:?}"),
            Err(error) => error.to_string(),
        }
    }
}

// Watches a thread sleep: Linux thread states.
#[cfg(unix)]
#[test]
fn a_queue_dropped_by_its_creator_is_a_clear_error_in_a_waiting_reader() {
    let _bound = bound::within(TEST_BOUND);
    let (q, started) = (Queue::new().unwrap(), Queue::new().unwrap());
    let handle = Waiter {
        q: q.clone(),
        started: started.clone(),
    }
    .start()
    .unwrap();
    let Next::Msg(reader) = started.get_timeout(BOUND).unwrap() else {
        panic!("the reader never started");
    };
    let reader = u32::try_from(reader.data).unwrap();
    // Drop the queue once the reader sleeps in its `get` (nothing will ever arrive).
    bound::until(BOUND, "the reader waits in get()", || {
        pid::state(reader) == Some('S')
    });
    drop(q);
    let said = handle.result_timeout(BOUND).unwrap();
    assert!(
        said.contains("the queue (the process that created it dropped it or ended) is gone"),
        "{said}"
    );
}

/// One thread of the child waits for a message that never comes; the other puts on the
/// same handle meanwhile.
#[cfg(unix)]
#[derive(Serialize, Deserialize)]
struct TwoThreads {
    q: Queue<u64>,
}

#[cfg(unix)]
#[skprocess]
impl TwoThreads {
    fn run(&mut self) {
        let waiting = self.q.clone();
        let (read, reading) = std::sync::mpsc::channel();
        let reading_thread = std::thread::spawn(move || {
            let _ = read.send(pid::current_tid());
            // What it takes goes back by this put; dropping its handle at the end of the
            // thread acknowledges the message it took.
            if let Ok(Some(message)) = waiting.get() {
                let _ = waiting.put(message.data);
            }
        });
        // Put once the other thread sleeps in its `get`.
        let reader = reading.recv_timeout(BOUND).unwrap();
        bound::until(BOUND, "the reading thread waits in get()", || {
            pid::thread_state(reader) == Some('S')
        });
        for i in 0..10 {
            self.q.put(i).unwrap();
        }
        // The process must not end between that put and the acknowledgement: a message in
        // hand at the end comes again, and it would then be there twice.
        bound::until(BOUND, "the reading thread ends", || {
            reading_thread.is_finished()
        });
    }
}

// Watches a thread sleep: Linux thread states.
#[cfg(unix)]
#[test]
fn a_thread_waiting_to_read_does_not_hold_up_another_threads_puts_on_the_same_handle() {
    let _bound = bound::within(TEST_BOUND);
    let q = Queue::new().unwrap();
    let handle = TwoThreads { q: q.clone() }.start().unwrap();
    handle.result_timeout(BOUND).unwrap();
    // The reader thread took one and put it back before its process ended.
    let deadline = Instant::now() + BOUND;
    while q.len() != Some(10) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut read: Vec<_> = q.items().unwrap().into_iter().map(|m| m.data).collect();
    read.sort_unstable();
    assert_eq!(read, (0..10).collect::<Vec<_>>());
}

/// ezq's worker as a plain function for `run`.
fn sum_worker(q: Queue<u64>, out: Queue<u64>) {
    let total: u64 = q.iter().map(|m| m.data).sum();
    out.put(total).unwrap();
}

#[test]
fn run_workers_sum_a_thousand_messages_and_stop_waits_for_them() {
    let _bound = bound::within(TEST_BOUND);
    let (q, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    let workers = (0..3)
        .map(|_| {
            skprocess::run(
                sum_worker as fn(Queue<u64>, Queue<u64>),
                (q.clone(), out.clone()),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    for i in 0..1000 {
        q.put(i).unwrap();
    }
    assert!(q.stop_timeout(&workers, BOUND).unwrap(), "a worker hung");
    assert!(workers.iter().all(|worker| !worker.is_alive()));
    assert_eq!(
        out.items().unwrap().iter().map(|m| m.data).sum::<u64>(),
        499_500
    );
}

/// `stop` takes one worker, an array, a slice, a `Vec` and references of them (checked at
/// compile time; never called).
#[allow(dead_code, reason = "only needs to compile")]
fn stop_accepts_every_collection_of_readers(
    q: &Queue<u64>,
    one: &skprocess::Worker<()>,
    array: &[skprocess::Worker<()>; 2],
    slice: &[skprocess::Worker<()>],
    vec: &Vec<skprocess::Worker<()>>,
    handles: &[Handle<Summer>],
) -> Result<(), Error> {
    q.stop(one)?;
    q.stop(array)?;
    q.stop(slice)?;
    q.stop(vec)?;
    q.stop(&[one, one])?;
    q.stop(handles)
}
