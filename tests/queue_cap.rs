//! The broker's connection cap, seen from a `Queue`: each thread of another process that uses
//! a queue holds one connection to its broker, the broker serves a bounded number at once
//! (`ServerConfig::max_connections`), and the thread past the cap gets a clear
//! `Error::TooManyConnections` — not a hang, not a thread without bound in the creating
//! process — while the admitted ones keep working and a freed place is taken again.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skprocess::Queue;
use skprocess::prelude::*;

skprocess::test_support!();

/// Every wait on the child, and every wait in it, is bounded.
const BOUND: Duration = Duration::from_secs(60);

/// Most threads the child opens before it gives up finding a cap.
const GIVE_UP: u64 = 2000;

/// What the child saw: the cap the refusal named, how many threads were admitted before it,
/// and whether a thread got in once one of them had left.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    limit: u32,
    admitted: u64,
    reopened: bool,
}

/// Opens connections to `q`'s broker, one thread each, until one is refused.
#[derive(Serialize, Deserialize)]
struct Crowd {
    q: Queue<u64>,
}

/// A thread that put one message over its own connection and holds it until released.
struct Holder {
    release: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// Starts a thread that puts `value` over its own connection; the outcome of the put, and the
/// thread, which keeps its connection until released (or the bound passes).
fn put_on_a_thread(q: &Queue<u64>, value: u64) -> (Result<(), Error>, Holder) {
    let (outcome_tx, outcome_rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let q = q.clone();
    let thread = std::thread::spawn(move || {
        let _ = outcome_tx.send(q.put(value));
        let _ = released.recv_timeout(BOUND);
    });
    let outcome = outcome_rx
        .recv_timeout(BOUND)
        .unwrap_or(Err(Error::Disconnected));
    (outcome, Holder { release, thread })
}

fn release(holder: Holder) {
    let _ = holder.release.send(());
    let _ = holder.thread.join();
}

#[skprocess]
impl Crowd {
    fn run(&mut self) {}

    fn result(&mut self) -> Result<Seen, String> {
        let mut holders = Vec::new();
        let mut refusal = None;
        for value in 0..GIVE_UP {
            let (outcome, holder) = put_on_a_thread(&self.q, value);
            match outcome {
                Ok(()) => holders.push(holder),
                Err(Error::TooManyConnections { limit }) => {
                    release(holder);
                    refusal = Some(limit);
                    break;
                }
                Err(other) => return Err(format!("put {value}: {other}")),
            }
        }
        let admitted = holders.len() as u64;
        let Some(limit) = refusal else {
            holders.into_iter().for_each(release);
            return Err(format!("{admitted} connections and no refusal"));
        };
        // One admitted thread leaves: its connection closes, and the broker takes a new one
        // as soon as it has seen that end.
        if let Some(first) = holders.pop() {
            release(first);
        }
        let deadline = Instant::now() + BOUND;
        let mut reopened = false;
        while !reopened && Instant::now() < deadline {
            let (outcome, holder) = put_on_a_thread(&self.q, GIVE_UP);
            reopened = outcome.is_ok();
            if reopened {
                holders.push(holder);
            } else {
                release(holder);
                std::thread::yield_now();
            }
        }
        holders.into_iter().for_each(release);
        Ok(Seen {
            limit,
            admitted,
            reopened,
        })
    }
}

#[test]
fn the_thread_past_the_brokers_cap_gets_too_many_connections_and_a_freed_place_is_taken() {
    let q: Queue<u64> = Queue::new().unwrap();
    let seen = Crowd { q: q.clone() }
        .start()
        .unwrap()
        .result_timeout(BOUND * 4)
        .expect("the child finishes and sees a refusal");
    assert_eq!(seen.limit, 256, "{seen:?}");
    assert_eq!(seen.admitted, u64::from(seen.limit), "{seen:?}");
    assert!(seen.reopened, "no thread got in after one left: {seen:?}");
    // Every admitted put arrived, and the refused one did not.
    let values: Vec<u64> = q.items().unwrap().into_iter().map(|m| m.data).collect();
    assert_eq!(values.len() as u64, seen.admitted + 1, "{values:?}");
    assert!(values.contains(&GIVE_UP));
}
