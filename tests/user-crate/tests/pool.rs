skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest the test may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

// A pool mapping library functions and a library process type, as an outside user would.

use skprocess::prelude::*;
use skprocess_user_crate::Doubler;
use skprocess_user_crate::pool_work::{Line, Measure, measure, power};

#[test]
fn a_pool_maps_library_functions_and_library_process_types() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(2).unwrap();
    let lines = ["the quick brown fox", "jumps over", "the lazy dog"]
        .iter()
        .zip(1..)
        .map(|(text, number)| Line {
            number,
            text: (*text).to_owned(),
        });
    let measures = pool.map(measure, lines).unwrap();
    let words: Vec<usize> = measures.iter().map(|m| m.words).collect();
    assert_eq!(words, [4, 2, 3]);
    assert_eq!(
        measures[1],
        Measure {
            number: 2,
            words: 2,
            chars: 10
        }
    );
    assert_eq!(
        pool.star()
            .map(power as fn(u64, u32) -> u64, [(2, 10), (3, 3)])
            .unwrap(),
        [1024, 27]
    );
    let doubled = pool
        .map_processes([Doubler { value: 1 }, Doubler { value: 5 }])
        .unwrap();
    assert_eq!(doubled, [8, 40]);
}
