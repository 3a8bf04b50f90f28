//! Pool maps over real worker processes: SCN-14, E11, E12 and the four maps' orders.

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn mul3(a: u64, b: u64, c: u64) -> u64 {
    a * b * c
}

fn double(x: i64) -> i64 {
    x * 2
}

#[test]
fn scn14_map_star_unordered_and_empty_give_the_specs_values() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.map(square, 1..=10).unwrap(),
        [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]
    );
    assert_eq!(
        pool.star()
            .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4), (5, 6), (7, 8)])
            .unwrap(),
        [3, 7, 11, 15]
    );
    assert_eq!(
        pool.star()
            .map(
                mul3 as fn(u64, u64, u64) -> u64,
                [(1, 2, 3), (4, 5, 6), (7, 8, 9)]
            )
            .unwrap(),
        [6, 120, 504]
    );
    let mut unordered = pool.unordered_map(double, [1, 2, 3]).unwrap();
    unordered.sort();
    assert_eq!(unordered, [2, 4, 6]);
    assert_eq!(
        pool.map(double, Vec::<i64>::new()).unwrap(),
        Vec::<i64>::new()
    );
}

#[test]
fn a_non_capturing_closure_maps_ten_thousand_items_in_order() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let doubled = pool.map(|x: u64| x * 2, 0..10_000u64).unwrap();
    assert_eq!(doubled, (0..10_000u64).map(|x| x * 2).collect::<Vec<_>>());
}

#[test]
fn imap_yields_in_input_order_and_unordered_imap_yields_every_item() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let ordered: Vec<u64> = pool.imap(square, 0..100u64).map(Result::unwrap).collect();
    assert_eq!(ordered, (0..100u64).map(square).collect::<Vec<_>>());
    let mut any: Vec<u64> = pool
        .unordered_imap(square, 0..100u64)
        .map(Result::unwrap)
        .collect();
    any.sort();
    assert_eq!(any, ordered);
}

#[test]
fn imap_is_lazy_on_its_input() {
    let _bound = bound::within(TEST_BOUND);
    use std::sync::atomic::{AtomicU64, Ordering};
    static PULLED: AtomicU64 = AtomicU64::new(0);
    let pool = Pool::new(1).unwrap();
    let input = (0..1_000_000u64).inspect(|_| {
        PULLED.fetch_add(1, Ordering::SeqCst);
    });
    let first: Vec<u64> = pool
        .imap(square, input)
        .take(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, [0, 1, 4]);
    let pulled = PULLED.load(Ordering::SeqCst);
    assert!(pulled < 100_000, "imap pulled {pulled} items to yield 3");
}

#[test]
fn e11_e12_examples_give_their_values() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.map(square, 1..=10).unwrap(),
        [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]
    );
    assert_eq!(
        pool.star()
            .map(add as fn(u64, u64) -> u64, [(1, 2), (3, 4), (5, 6), (7, 8)])
            .unwrap(),
        [3, 7, 11, 15]
    );
    assert_eq!(
        pool.star()
            .map(
                mul3 as fn(u64, u64, u64) -> u64,
                [(1, 2, 3), (4, 5, 6), (7, 8, 9)]
            )
            .unwrap(),
        [6, 120, 504]
    );
}

#[test]
fn an_empty_input_touches_no_worker_even_on_a_closed_pool_of_one() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let pids = pool.worker_pids();
    assert_eq!(pool.map(square, []).unwrap(), Vec::<u64>::new());
    assert_eq!(pool.imap(square, []).count(), 0);
    assert_eq!(pool.worker_pids(), pids);
    let _ = Duration::ZERO;
}
