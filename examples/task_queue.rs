//! SCN-25: a task queue with lives, shared statistics and a shared timer. Ten tasks; a task
//! fails when the first byte of the SHA-256 of its data is a multiple of 10 (tasks 6 and 9);
//! each gets one retry (`lives = 2`).
//!
//! Run it with `cargo run --example task_queue`: completed 8, failed 2, retried 2.

use std::time::Instant;

use sha2::{Digest, Sha256};
use skprocess::Sktimer;
use skprocess::prelude::*;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct TaskStats {
    total_tasks: u64,
    completed: u64,
    failed: u64,
    retried: u64,
    timer: Sktimer,
}

#[shared]
impl TaskStats {
    fn record_complete(&mut self) {
        self.completed += 1;
        self.total_tasks += 1;
    }

    fn record_fail(&mut self) {
        self.failed += 1;
        self.total_tasks += 1;
    }

    fn record_retry(&mut self) {
        self.retried += 1;
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    id: u64,
    status: String,
    attempts: u32,
}

#[derive(Serialize, Deserialize)]
struct TaskWorker {
    id: u64,
    data: String,
    stats: Share<TaskStats>,
    attempts: u32,
}

#[skprocess(runs = 1, lives = 2, timeout(run = "2s"))]
impl TaskWorker {
    fn prerun(&mut self) {
        self.attempts += 1;
        if self.attempts > 1 {
            self.stats.record_retry();
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let started = Instant::now();
        if Sha256::digest(self.data.as_bytes())[0] % 10 == 0 {
            return Err(format!("task {} failed", self.id));
        }
        self.stats.timer.add_time(started.elapsed());
        self.stats.record_complete();
        Ok(())
    }

    fn result(&mut self) -> Outcome {
        self.outcome("completed")
    }

    fn error(&mut self, _error: &Error) -> Outcome {
        self.stats.record_fail();
        self.outcome("failed")
    }
}

impl TaskWorker {
    fn outcome(&self, status: &str) -> Outcome {
        Outcome {
            id: self.id,
            status: status.to_owned(),
            attempts: self.attempts,
        }
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let stats = Share::new(TaskStats::default())?;
    let tasks: Vec<TaskWorker> = (0..10)
        .map(|id| TaskWorker {
            id,
            data: format!("task_{id}"),
            stats: stats.clone(),
            attempts: 0,
        })
        .collect();
    // Two workers, like the spec's `Pool(workers=2)`.
    let outcomes = Pool::new(2)?.map_processes(tasks)?;
    for outcome in &outcomes {
        println!("{outcome:?}");
    }
    let (completed, failed, retried) = (
        stats.completed.get()?,
        stats.failed.get()?,
        stats.retried.get()?,
    );
    println!(
        "total {}, completed {completed}, failed {failed}, retried {retried}, timer samples {}",
        stats.total_tasks.get()?,
        stats.timer.num_times()?
    );
    assert_eq!((completed, failed, retried), (8, 2, 2));
    Ok(())
}
