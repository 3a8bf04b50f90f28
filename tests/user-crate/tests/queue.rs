skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// A queue of a message type defined in the library, read by `run` workers.

use std::time::Duration;

use skprocess::Queue;
use skprocess::queue::Msg;
use skprocess_user_crate::orders::{Order, price_orders};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn run_workers_price_library_orders_from_a_queue() {
    let _bound = bound::within(TEST_BOUND);
    let (orders, out) = (Queue::new().unwrap(), Queue::new().unwrap());
    let workers = (0..2)
        .map(|_| {
            skprocess::run(
                price_orders as fn(Queue<Order>, Queue<u64>) -> Result<(), String>,
                (orders.clone(), out.clone()),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    for quantity in 1..=10 {
        let order = Order {
            item: "pear".to_owned(),
            quantity,
        };
        orders
            .put_message(Msg::new(order).kind("fruit").order(u64::from(quantity)))
            .unwrap();
    }
    assert!(orders.stop_timeout(&workers, LIMIT).unwrap());
    let totals: u64 = out.items().unwrap().iter().map(|m| m.data).sum();
    assert_eq!(totals, 4 * 55);
}
