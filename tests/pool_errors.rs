//! Per-item errors keep their kind and index (SCN-16, E14, POOL-E02, POOL-E03), per-item
//! timeouts (SCN-17, E13), and large results (BUG-14), over real worker processes.

use std::sync::Arc;
use std::time::Duration;

use skprocess::PoolConfig;
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

fn value_error_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("ValueError: Cannot process {x}");
    }
    2 * x
}

/// The message of an item's panic, and the item's index.
fn panicked(error: &Error) -> Option<(u64, &str)> {
    match error {
        Error::Item { index, error } => match &**error {
            Error::Panicked { message, .. } => Some((*index, message.as_str())),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn scn16_e14_a_failing_item_names_its_index_and_message_and_the_pool_stays_usable() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let error = pool.map(value_error_on_three, [1, 2, 3, 4, 5]).unwrap_err();
    let (index, message) = panicked(&error).unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(index, 2);
    assert!(message.starts_with("ValueError: "), "{message}");
    assert_eq!(message, "ValueError: Cannot process 3");
    assert_eq!(
        error.to_string(),
        "item 2 failed: the function panicked at tests/pool_errors.rs:23:9: ValueError: Cannot process 3"
    );
    assert_eq!(
        pool.map(value_error_on_three, [1, 2, 4, 5]).unwrap(),
        [2, 4, 8, 10]
    );
}

fn fails_on_odd_after_a_delay(x: u64) -> u64 {
    if x % 2 == 1 {
        // The later item fails first in time; map still reports the first in input order.
        std::thread::sleep(Duration::from_millis(if x == 1 { 200 } else { 0 }));
        panic!("odd {x}");
    }
    x
}

#[test]
fn map_reports_the_first_failure_in_input_order_and_imap_yields_up_to_and_past_it() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let error = pool
        .map(fails_on_odd_after_a_delay, [0, 1, 2, 3, 4])
        .unwrap_err();
    assert_eq!(panicked(&error), Some((1, "odd 1")));
    let outcomes: Vec<Result<u64, Error>> = pool
        .imap(fails_on_odd_after_a_delay, [0, 2, 3, 4])
        .collect();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0].as_ref().unwrap(), &0);
    assert_eq!(outcomes[1].as_ref().unwrap(), &2);
    assert_eq!(
        panicked(outcomes[2].as_ref().unwrap_err()),
        Some((2, "odd 3"))
    );
    assert_eq!(outcomes[3].as_ref().unwrap(), &4);
}

fn sleepy(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x
}

fn quick(x: u64) -> u64 {
    x
}

fn is_timeout(error: &Error, expected_index: u64) -> bool {
    matches!(error, Error::Item { index, error } if *index == expected_index && matches!(**error, Error::ItemTimeout { .. }))
}

/// Runs `work` on a thread and waits for it at most `BOUND`: a map that hangs fails the test.
#[track_caller]
fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    bound::on_thread(BOUND, "the map", work)
}

/// Waits until the pool has `n` worker processes again.
#[track_caller]
fn wait_for_workers(pool: &Pool, n: usize) {
    bound::until(BOUND, &format!("the pool gets back to {n} workers"), || {
        pool.worker_pids().len() == n
    });
}

#[test]
fn scn17_each_map_form_fails_a_late_item_with_a_timeout_and_quick_items_pass() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(1).unwrap());
    let limit = Duration::from_millis(100);
    let p = Arc::clone(&pool);
    let error = bounded(move || p.timeout(limit).map(sleepy, [1]).unwrap_err());
    assert!(is_timeout(&error, 0), "{error:?}");
    assert_eq!(
        error.to_string(),
        "item 0 failed: the item ran longer than its limit of 100ms; its worker was replaced"
    );
    let p = Arc::clone(&pool);
    let imap: Vec<_> = bounded(move || p.timeout(limit).imap(sleepy, [1]).collect());
    assert!(is_timeout(imap[0].as_ref().unwrap_err(), 0));
    let p = Arc::clone(&pool);
    let unordered: Vec<_> = bounded(move || p.timeout(limit).unordered_imap(sleepy, [1]).collect());
    assert!(is_timeout(unordered[0].as_ref().unwrap_err(), 0));
    let p = Arc::clone(&pool);
    let error = bounded(move || p.timeout(limit).unordered_map(sleepy, [1]).unwrap_err());
    assert!(is_timeout(&error, 0));
    let p = Arc::clone(&pool);
    let quick_ones = bounded(move || p.timeout(Duration::from_secs(2)).map(quick, [1, 2, 3]));
    assert_eq!(quick_ones.unwrap(), [1, 2, 3]);
    wait_for_workers(&pool, 1);
}

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

fn slow_fifth(x: u64) -> u64 {
    if x == 5 {
        std::thread::sleep(Duration::from_secs(20));
    }
    fib(x)
}

fn fib_from_twenty(x: u64) -> u64 {
    fib(20 + x)
}

#[test]
fn e13_a_late_fifth_item_times_out_while_the_others_finish_and_imap_gives_fibs() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(2).unwrap());
    let limit = Duration::from_millis(300);
    let p = Arc::clone(&pool);
    let outcomes: Vec<_> = bounded(move || p.timeout(limit).imap(slow_fifth, 1..=8).collect());
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 4 {
            assert!(is_timeout(outcome.as_ref().unwrap_err(), 4));
        } else {
            assert_eq!(outcome.as_ref().unwrap(), &fib(i as u64 + 1));
        }
    }
    let p = Arc::clone(&pool);
    let error = bounded(move || p.timeout(limit).map(slow_fifth, 1..=8).unwrap_err());
    assert!(is_timeout(&error, 4), "{error:?}");
    let p = Arc::clone(&pool);
    let fibs: Vec<u64> = bounded(move || {
        p.timeout(Duration::from_secs(5))
            .imap(fib_from_twenty, [1, 2, 3])
            .map(Result::unwrap)
            .collect()
    });
    assert_eq!(fibs, [10946, 17711, 28657]);
}

/// `n` zero bytes, as bytes on the wire (a `Vec<u8>` would travel element by element).
fn zeros(n: usize) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![0; n])
}

#[test]
fn a_ten_megabyte_result_returns_and_one_above_the_frame_limit_fails_alone() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Arc::new(Pool::new(1).unwrap());
    let p = Arc::clone(&pool);
    let big = bounded(move || p.timeout(Duration::from_secs(30)).map(zeros, [10_000_000]));
    let big = big.unwrap();
    assert_eq!(big[0].len(), 10_000_000);
    let small_frames =
        Pool::with_config(PoolConfig::default().workers(1).max_frame_bytes(1 << 20)).unwrap();
    let outcomes: Vec<_> = small_frames.imap(zeros, [10, 2 << 20, 20]).collect();
    assert_eq!(outcomes[0].as_ref().unwrap().len(), 10);
    match outcomes[1].as_ref().unwrap_err() {
        Error::Item { index: 1, error } => {
            assert!(matches!(**error, Error::TooLarge { .. }), "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcomes[2].as_ref().unwrap().len(), 20);
    // An input item too large for a frame fails alone too, without reaching a worker.
    let outcomes: Vec<_> = small_frames
        .imap(|v: Vec<u8>| v.len(), [vec![1u8; 4], vec![0u8; 2 << 20]])
        .collect();
    assert_eq!(outcomes[0].as_ref().unwrap(), &4);
    assert!(
        matches!(outcomes[1].as_ref().unwrap_err(), Error::Item { index: 1, error } if matches!(**error, Error::TooLarge { .. }))
    );
}

/// Panics with a message of `len` bytes. The worker's panic hook is silenced first: the
/// message comes back through the pool, and 2000 default reports of up to 100 KiB each would
/// put some 200 MB on the test's stderr.
fn panics_with_a_long_message(len: usize) -> u64 {
    std::panic::set_hook(Box::new(|_| {}));
    panic!("{}", "x".repeat(len));
}

#[test]
fn panics_with_long_messages_come_back_cut_even_with_the_smallest_frame_limit() {
    let _bound = bound::within(TEST_BOUND);
    // 64 KiB frames: 8 KiB messages add up past a frame within one batch, and a 100 KiB
    // message alone does not fit. Before results were sized by their failures too, such
    // batches were dropped and the map never returned.
    let pool = Arc::new(
        Pool::with_config(PoolConfig::default().workers(2).max_frame_bytes(64 * 1024)).unwrap(),
    );
    for len in [8 * 1024 - 16, 100 * 1024] {
        let p = Arc::clone(&pool);
        let outcomes: Vec<Result<u64, Error>> = bounded(move || {
            p.imap(panics_with_a_long_message, vec![len; 2000])
                .collect()
        });
        assert_eq!(outcomes.len(), 2000);
        for outcome in &outcomes {
            let error = outcome.as_ref().unwrap_err();
            let (_, message) = panicked(error).unwrap_or_else(|| panic!("{error:?}"));
            assert!(message.starts_with("xxxx"), "{message:.40}");
            assert!(message.len() <= 8 * 1024 + 64, "{} bytes", message.len());
        }
    }
}
