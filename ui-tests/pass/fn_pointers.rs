//! Every way to hand a function to another process compiles: `fn` items and closures that
//! capture nothing coerce to the `fn` pointers the APIs take.
use skprocess::prelude::*;
use skprocess::{ProcessQueue, WorkerResource};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn log(item: u64) {
    let _ = item;
}

#[allow(dead_code)]
fn forms(pool: &Pool) -> Result<(), Error> {
    let _: Vec<u64> = pool.map(square, 0..4)?;
    let _: Vec<u64> = pool.map(|x: u64| x * 2, 0..4u64)?;
    let _: Vec<u64> = pool.map(|x| x * 2, vec![1u64])?;
    let _: Vec<String> = pool.unordered_map(|x: u64| x.to_string(), [1u64])?;
    let _ = pool.imap(square, 0..4).count();
    let _ = pool.background().map(square, 0..4).join();
    let _: Vec<u64> = pool.star().map(add as fn(u64, u64) -> u64, [(1, 2)])?;
    let _: Vec<u64> = pool.star().map(|a: u64, b: u64| a + b, [(1, 2)])?;
    let _: Vec<u64> = pool.star().map(|a, b| a + b, [(1u64, 2u64)])?;
    let _: Vec<u64> = skprocess::map(square, 0..4)?;
    let _ = skprocess::run(add as fn(u64, u64) -> u64, (2, 3))?.join()?;
    let _ = skprocess::run(|a: u64, b: u64| a * b, (2, 3))?.join()?;
    let _ = skprocess::run_thread(|a: u64| a + 1, (2,))?.join()?;
    let mut worker = WorkerResource::new(square)?;
    worker.update_fn(|x| x + 1)?;
    let _ = ProcessQueue::new(log);
    let _ = ProcessQueue::new(|item: u64| println!("{item}"));
    Ok(())
}

#[skprocess::main]
fn main() {}
