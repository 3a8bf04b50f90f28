//! The headline of issue 8: 20 items mapped on a pool of 4 worker processes update one shared
//! value, and their log records reach this process's subscriber.
//!
//! Run it with `cargo run --example share_headline`: it prints 20 log lines (one per item,
//! each with the worker's pid and process type), then the counter (20) and the number of
//! results (20).

use skprocess::prelude::*;

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

#[skprocess(runs = 1)]
impl Worker {
    fn run(&mut self) {
        let result = self.item * 2;
        self.share.results.push(result); // a write: fire-and-forget, applied in order
        self.share.counter += 1; // one atomic update on the coordinator
        tracing::info!(result, "done"); // reaches the parent's subscriber
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    tracing_subscriber::fmt().with_target(false).init();
    let share = Share::new(Tally::default())?;
    Pool::new(4)?.map_processes((0..20).map(|item| Worker {
        share: share.clone(),
        item,
    }))?;
    let counter = share.counter.get()?;
    let results = share.results.len()?;
    println!("counter {counter}, {results} results");
    assert_eq!(counter, 20);
    assert_eq!(results, 20);
    // Records travel on their own connections; give the last ones a moment to be printed.
    std::thread::sleep(std::time::Duration::from_millis(100));
    Ok(())
}
