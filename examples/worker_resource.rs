//! doctable's `WorkerResource`: one persistent worker process running a swappable function,
//! called synchronously and asynchronously, with its status measured in the worker.

use std::time::Duration;

use skprocess::{Error, WorkerResource};

/// Counts the words of a line.
fn word_count(line: String) -> usize {
    line.split_whitespace().count()
}

/// Counts the characters of a line.
fn char_count(line: String) -> usize {
    line.chars().count()
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let mut worker = WorkerResource::new(word_count)?;
    println!(
        "execute: {}",
        worker.execute("the quick brown fox".to_owned())?
    );

    for line in ["a b", "c d e", "f"] {
        worker.send(line.to_owned())?;
    }
    while worker.poll(Duration::from_secs(5))? {
        println!("recv: {}", worker.recv()?);
    }

    worker.update_fn(char_count)?;
    println!("after update_fn: {}", worker.execute("hello".to_owned())?);

    let status = worker.status()?;
    println!(
        "status: uptime {:?}, busy {:?}, starved {:?}, {} items ({:.1}% busy)",
        status.uptime,
        status.busy,
        status.starved,
        status.items,
        status.utilization() * 100.0
    );
    worker.stop()
}
