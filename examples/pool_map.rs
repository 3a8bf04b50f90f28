//! SCN-14's forms on a pool of worker processes: map, star, unordered, empty, a closure, lazy
//! imap, and a `#[skprocess]` type per item.
//!
//! Run it with `cargo run --example pool_map`.

use skprocess::prelude::*;

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn mul3(a: u64, b: u64, c: u64) -> u64 {
    a * b * c
}

fn double(x: u64) -> u64 {
    x * 2
}

#[derive(Serialize, Deserialize)]
struct DoubleProcess(u64);

#[skprocess]
impl DoubleProcess {
    fn run(&mut self) {
        self.0 *= 2;
    }

    fn result(&mut self) -> u64 {
        self.0
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    println!("workers: {:?}", pool.worker_pids());

    let squares = pool.map(square, 1..=10)?;
    println!("map(square, 1..=10)            = {squares:?}");
    assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);

    let sums = pool
        .star()
        .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4), (5, 6), (7, 8)])?;
    println!("star().map(add, pairs)         = {sums:?}");
    assert_eq!(sums, [3, 7, 11, 15]);

    let products = pool.star().map(
        mul3 as fn(u64, u64, u64) -> u64,
        [(1, 2, 3), (4, 5, 6), (7, 8, 9)],
    )?;
    println!("star().map(mul3, triples)      = {products:?}");
    assert_eq!(products, [6, 120, 504]);

    let mut doubled = pool.unordered_map(double, [1, 2, 3])?;
    doubled.sort();
    println!("unordered_map(double), sorted  = {doubled:?}");
    assert_eq!(doubled, [2, 4, 6]);

    let empty = pool.map(double, Vec::new())?;
    println!("map(double, [])                = {empty:?}");
    assert!(empty.is_empty());

    let many = pool.map(|x: u64| x * 2, 0..10_000)?;
    println!(
        "map(|x| x * 2, 0..10_000)      = [{}, {}, …, {}]",
        many[0], many[1], many[9_999]
    );

    let first: Vec<u64> = pool.imap(square, 0..).take(5).collect::<Result<_, _>>()?;
    println!("imap(square, 0..).take(5)      = {first:?}  (lazy: an endless input)");

    let processes = pool.map_processes((0..100).map(DoubleProcess))?;
    println!(
        "map_processes(DoubleProcess)   = [{}, {}, …, {}]",
        processes[0], processes[1], processes[99]
    );
    assert_eq!(processes, (0..100).map(|i| 2 * i).collect::<Vec<_>>());
    Ok(())
}
