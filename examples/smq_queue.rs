//! smq's `ProcessQueue`: give it a function, call `start` with items whenever there is work.
//! A worker process starts when none is alive, drains the queue and exits when it is empty;
//! `start` never waits for it.
//!
//! Run it with `cargo run --example smq_queue`.

use std::time::{Duration, Instant};

use skprocess::ProcessQueue;
use skprocess::prelude::*;

/// The handler, run in the worker process.
fn process_item(name: String) {
    std::thread::sleep(Duration::from_millis(50));
    println!("  worker {}: processed {name}", std::process::id());
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Waits until the worker has drained the queue and exited, at most 30 s.
fn wait_until_done(queue: &ProcessQueue<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !queue.is_done() {
        assert!(
            Instant::now() < deadline,
            "the worker did not finish in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pq = ProcessQueue::new(process_item);

    let (new_instance, queue_length) = pq.start(names(&["dave", "mike", "eric"]))?;
    println!("start: new instance: {new_instance}, queue length: {queue_length}");
    assert!(new_instance);

    let (new_instance, queue_length) = pq.start(names(&["kevin", "bernard", "simon"]))?;
    println!(
        "start again while it runs: new instance: {new_instance}, queue length: {queue_length}"
    );
    assert!(!new_instance);
    println!(
        "alive: {}, worker pid: {:?}",
        pq.is_alive(),
        pq.worker_pid()
    );

    wait_until_done(&pq);
    println!(
        "drained: done: {}, queue length: {}",
        pq.is_done(),
        pq.len()
    );
    assert_eq!(pq.len(), 0);

    let (new_instance, queue_length) = pq.start(names(&["ada", "grace", "alan"]))?;
    println!("start after it exited: new instance: {new_instance}, queue length: {queue_length}");
    assert!(new_instance);
    let stopped = pq.stop()?;
    println!(
        "stop: {stopped}; alive: {}; done: {}; items still queued: {}",
        pq.is_alive(),
        pq.is_done(),
        pq.len()
    );
    assert!(stopped && !pq.is_alive() && !pq.is_done());
    println!("clear: dropped {} items", pq.clear());
    assert!(pq.is_empty() && pq.is_done());
    Ok(())
}
