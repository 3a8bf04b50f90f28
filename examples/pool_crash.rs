//! A worker SIGKILLed in the middle of a map (`TerminateProcess` on Windows): the item it was
//! running fails with `Error::Crashed` naming how the worker ended, every other item finishes,
//! a replacement worker starts, and the next map works.
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

/// Ends process `pid` at once, as a crash would.
#[cfg(unix)]
fn kill(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// Ends process `pid` at once, as a crash would.
#[cfg(windows)]
fn kill(pid: u32) {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};
    // SAFETY: plain calls on a handle opened here and closed once; a null one is skipped.
    unsafe {
        let process = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if !process.is_null() {
            TerminateProcess(process, 1);
            CloseHandle(process);
        }
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(1)?;
    let victim = pool.worker_pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        println!("killing worker {victim}");
        kill(victim);
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
