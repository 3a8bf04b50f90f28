//! A worker SIGKILLed in the middle of a map: the item it was running fails with
//! `Error::Crashed` naming the signal, every other item finishes, a replacement worker starts,
//! and the next map works.
//!
//! Run it with `cargo run --example pool_crash`.

use std::time::Duration;

use skprocess::prelude::*;

fn slow_square(x: u64) -> u64 {
    if x == 3 {
        // Long enough for the killer below to find this item running.
        std::thread::sleep(Duration::from_secs(5));
    }
    x * x
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(1)?;
    let victim = pool.worker_pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        println!("sending SIGKILL to worker {victim}");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    });
    for (i, outcome) in pool.imap(slow_square, 0..8).enumerate() {
        match outcome {
            Ok(value) => println!("item {i}: {value}"),
            Err(error) => println!("item {i}: {error}"),
        }
    }
    let _ = killer.join();
    println!("workers now: {:?} (was [{victim}])", pool.worker_pids());
    println!("next map: {:?}", pool.map(slow_square, [4, 5])?);
    Ok(())
}
