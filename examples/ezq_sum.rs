//! ezq's "Sum Messages": worker processes read a queue until its end, add up the messages and
//! put their totals on another queue. Prints 499500.
//!
//! Run it with `cargo run --example ezq_sum`.

use skprocess::queue::Msg;
use skprocess::{Queue, num_cpus, run};

/// Adds up the messages until the queue's end, then puts the total on `out`.
fn worker(q: Queue<u64>, out: Queue<u64>) {
    let total: u64 = q.iter().map(|message| message.data).sum();
    // The worker's process would end anyway; a failed put fails the worker, which `stop`
    // does not hide: the sum below would be short.
    out.put(total).expect("the output queue is gone");
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    // Step 1: create the queues and start the workers.
    let (q, out) = (Queue::new()?, Queue::new()?);
    let workers = (0..num_cpus())
        .map(|_| {
            run(
                worker as fn(Queue<u64>, Queue<u64>),
                (q.clone(), out.clone()),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Step 2: send work to the workers.
    for i in 0..1000 {
        q.put(i)?;
    }

    // Step 3: tell the workers to finish (one end each) and wait for them.
    q.stop(&workers)?;

    // Step 4: process the results.
    let want: u64 = (0..1000).sum();
    let have: u64 = out
        .items()?
        .iter()
        .map(|message: &Msg<u64>| message.data)
        .sum();
    assert_eq!(have, want);
    println!("{have}");
    Ok(())
}
