//! The headline: four worker processes in a pool update one shared counter and one shared list,
//! and log to this process — no locks, no queues, no manager.
//!
//! Run it with `cargo run --example quickstart`. It prints exactly (`.ci/run` compares it):
//!
//! ```text
//! counter: 20
//! results: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38]
//! log records from the workers: 20
//! ```
//!
//! and, on stderr, one `done` record per item from the worker that ran it, with its pid.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use skprocess::prelude::*;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    counter: u64,
    results: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct Worker {
    share: Share<Tally>,
    item: u64,
}

#[skprocess]
impl Worker {
    fn run(&mut self) {
        let result = self.item * 2;
        self.share.results.push(result); // shared list
        self.share.counter += 1; // shared counter
        tracing::info!(result, "done"); // logged in the parent
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(CountRecords)
        .init();

    let share = Share::new(Tally::default())?;
    let pool = Pool::new(4)?;
    pool.map_processes((0..20).map(|item| Worker {
        share: share.clone(),
        item,
    }))?;

    let counter = share.counter.get()?;
    let mut results = share.results.get()?;
    results.sort_unstable();
    let records = records_at_least(20);
    println!("counter: {counter}");
    println!("results: {results:?}");
    println!("log records from the workers: {records}");
    assert_eq!(counter, 20);
    assert_eq!(results, (0..20).map(|item| item * 2).collect::<Vec<_>>());
    assert_eq!(records, 20);
    Ok(())
}

/// Records from the workers that reached this process. They travel on connections of their
/// own, so the last ones may still be on the way when the map returns: `main` waits for them.
static RECORDS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Counts every record of a child (target `skprocess::child`).
struct CountRecords;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountRecords {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "skprocess::child" {
            *RECORDS.0.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            RECORDS.1.notify_all();
        }
    }
}

/// Waits (10 s at most) until `count` records arrived; how many did.
fn records_at_least(count: usize) -> usize {
    let (records, arrived) = &RECORDS;
    let records = records.lock().unwrap_or_else(PoisonError::into_inner);
    let (records, _) = arrived
        .wait_timeout_while(records, Duration::from_secs(10), |seen| *seen < count)
        .unwrap_or_else(PoisonError::into_inner);
    *records
}
