//! ezq's "Read and Write Queues": thread workers read numbers from a thread-only queue and
//! compute one Collatz step each; a printer process reads their results in order. Prints 40
//! lines, `0 -> 0` to `39 -> 118`, sorted.
//!
//! Run it with `cargo run --example ezq_collatz`.

use skprocess::queue::Msg;
use skprocess::{LocalQueue, Queue, run, run_thread};

/// How many thread workers compute.
const THREADS: usize = 4;

/// Prints the results in increasing `order`, whatever order they arrive in.
fn printer(out: Queue<(u64, u64)>) {
    for message in out.sorted() {
        let (number, next) = message.data;
        println!("{number} -> {next}");
    }
}

/// Reads numbers and computes their next Collatz value, keeping each number's order.
fn collatz(q: LocalQueue<u64>, out: Queue<(u64, u64)>) -> Result<(), skprocess::Error> {
    for message in &q {
        let number = message.data;
        let next = match message.kind.as_deref() {
            Some("EVEN") => number / 2,
            Some("ODD") => 3 * number + 1,
            _ => continue,
        };
        let mut result = Msg::new((number, next));
        result.order = message.order;
        out.put_message(result)?;
    }
    Ok(())
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let (q, out) = (Queue::local(), Queue::new()?);
    let readers = (0..THREADS)
        .map(|_| {
            run_thread(
                collatz as fn(LocalQueue<u64>, Queue<(u64, u64)>) -> Result<(), skprocess::Error>,
                (q.clone(), out.clone()),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let writer = run(printer as fn(Queue<(u64, u64)>), (out.clone(),))?;

    for number in 0..40 {
        let kind = if number % 2 == 0 { "EVEN" } else { "ODD" };
        q.put_message(Msg::new(number).kind(kind).order(number))?;
    }

    q.stop(&readers)?;
    out.stop(&writer)?;
    Ok(())
}
