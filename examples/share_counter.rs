//! `share.counter += 1` from 4 processes × 250: exactly 1000, every time.
//!
//! Run it with `cargo run --release --example share_counter`; it prints the total and the
//! rate of increments across the processes (add a number of increments per process as an
//! argument, e.g. `-- 250000`, to measure throughput).

use std::time::Instant;

use skprocess::prelude::*;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    counter: u64,
}

#[derive(Serialize, Deserialize)]
struct Incrementer {
    share: Share<Counter>,
    times: u64,
}

#[skprocess]
impl Incrementer {
    fn run(&mut self) {
        for _ in 0..self.times {
            self.share.counter += 1;
        }
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let times: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(250);
    let share = Share::new(Counter::default())?;
    let workers: Vec<_> = (0..4)
        .map(|_| Incrementer {
            share: share.clone(),
            times,
        })
        .collect();
    let started = Instant::now();
    let handles = workers
        .into_iter()
        .map(|worker| worker.start())
        .collect::<Result<Vec<_>, _>>()?;
    for handle in handles {
        handle.result()?;
    }
    let total = share.counter.get()?;
    let elapsed = started.elapsed();
    println!(
        "counter {total} after 4 processes × {times}: {:.0} increments/s (including process start-up)",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(total, 4 * times);
    Ok(())
}
