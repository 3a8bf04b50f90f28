//! A worker that panics once, is killed once from outside and times out once — and still
//! finishes every iteration, then prints its timers as a table.
//!
//! Run it with `cargo run --example reliable_worker`.

use std::time::Duration;

use skprocess::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Iteration { run: u64, pid: u32 },
}

#[derive(Default, Serialize, Deserialize)]
struct Worker {
    panicked: bool,
    completed: Vec<u64>,
}

#[skprocess(runs = 8, lives = 4, timeout(run = "300ms"), outbox = Event)]
impl Worker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let run = ctx.current_run();
        if run == 2 && !self.panicked {
            self.panicked = true;
            panic!("a bug on iteration 2 (retried in the same process)");
        }
        if run == 5 && ctx.lives_left() == 2 {
            // Overruns the 300 ms limit: the watchdog ends the child, the parent restarts it.
            std::thread::sleep(Duration::from_secs(2));
        }
        std::thread::sleep(Duration::from_millis(40));
        self.completed.push(run);
        ctx.tell(Event::Iteration {
            run,
            pid: std::process::id(),
        })
    }

    fn result(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.completed)
    }
}

#[cfg(unix)]
fn kill_from_outside(pid: u32) {
    // SAFETY: sending a signal to a process id has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[cfg(not(unix))]
fn kill_from_outside(_pid: u32) {}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let worker = Worker::default().start()?;
    let mut killed = false;
    while let Ok(Some(Event::Iteration { run, pid })) =
        worker.listen_timeout(Duration::from_secs(10))
    {
        println!("iteration {run} done in child {pid}");
        if run == 3 && !killed {
            killed = true;
            println!("-- sending SIGKILL to child {pid}");
            kill_from_outside(pid);
        }
    }
    assert!(worker.wait_timeout(Duration::from_secs(30)));
    let status = worker.status();
    let timers = worker.timers().expect("the lifecycle has ended");
    let completed = worker.result()?;
    println!(
        "completed iterations {completed:?} with {} restarts and {} lives left",
        status.restarts, status.lives_left
    );
    println!("\n{}", timers.table());
    assert_eq!(completed, (0..8).collect::<Vec<_>>());
    Ok(())
}
