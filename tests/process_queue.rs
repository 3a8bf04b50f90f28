//! `ProcessQueue` with real worker processes: every item handled, one worker at a time, a
//! worker that exits when the queue is empty and a new one on the next `start`, the exit/append
//! race from several threads, a SIGKILLed worker's item run again, `stop`, `Drop`, a parent
//! killed with SIGKILL, and a `start` that never waits for the handler. (On Windows a kill is
//! `TerminateProcess`.)
#![cfg(any(target_os = "linux", windows))]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skprocess::prelude::*;
use skprocess::{ProcessQueue, ProcessQueueConfig};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

#[path = "support/pid.rs"]
mod pid;
use pid::running;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// One item: where to record it, its value, a file to wait for first, whether to panic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    log: PathBuf,
    value: u64,
    gate: Option<PathBuf>,
    panics: bool,
    /// Abort the worker process (SIGABRT) instead of finishing.
    aborts: bool,
}

/// The handler: notes that it started, waits for its gate (bounded), then records
/// `value pid` in the log — one `write` per line, so lines from several processes never mix.
fn record(job: Job) {
    let pid = std::process::id();
    append_line(
        &job.log.with_extension("started"),
        &format!("{} {pid}", job.value),
    );
    if let Some(gate) = &job.gate {
        let deadline = Instant::now() + 2 * BOUND;
        while !gate.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if job.panics {
        panic!("item {} panics", job.value);
    }
    if job.aborts {
        std::process::abort();
    }
    append_line(&job.log, &format!("{} {pid}", job.value));
}

fn append_line(path: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write the log");
}

/// A fresh directory for one test's log and gate.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "skprocess-pqueue-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("handled.log")
    }

    fn gate(&self) -> PathBuf {
        self.dir.join("gate")
    }

    fn open_gate(&self) {
        std::fs::write(self.gate(), b"").unwrap();
    }

    fn job(&self, value: u64) -> Job {
        Job {
            log: self.log(),
            value,
            gate: None,
            panics: false,
            aborts: false,
        }
    }

    fn gated(&self, value: u64) -> Job {
        Job {
            gate: Some(self.gate()),
            ..self.job(value)
        }
    }

    /// `(value, pid)` per handled item, in the order they were recorded.
    fn handled(&self) -> Vec<(u64, u32)> {
        read_pairs(&self.log())
    }

    /// `(value, pid)` per item whose handler started.
    fn started(&self) -> Vec<(u64, u32)> {
        read_pairs(&self.log().with_extension("started"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_pairs(path: &Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let (value, pid) = line.split_once(' ').expect("a `value pid` line");
            (value.parse().unwrap(), pid.parse().unwrap())
        })
        .collect()
}

/// Waits until `condition` holds, at most `BOUND`.
#[track_caller]
fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    bound::until(BOUND, what, condition);
}

/// Whether `pid` is our child and still unreaped (running or a zombie).
#[cfg(unix)]
fn unreaped_child(pid: u32) -> bool {
    pid::parent(pid) == Some(std::process::id())
}

/// Whether `pid` is still there: Windows has no zombies, a child that exited is gone.
#[cfg(windows)]
fn unreaped_child(pid: u32) -> bool {
    pid::exists(pid)
}

fn values(handled: &[(u64, u32)]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for (value, _) in handled {
        *counts.entry(*value).or_default() += 1;
    }
    counts
}

fn once_each(range: std::ops::Range<u64>) -> BTreeMap<u64, usize> {
    range.map(|value| (value, 1)).collect()
}

#[test]
fn every_item_is_handled_once_by_one_worker() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("once");
    let queue = ProcessQueue::new(record);
    assert!(!queue.is_alive());
    let (spawned_new, queued) = queue.start((0..20).map(|v| scratch.job(v))).unwrap();
    assert!(spawned_new);
    assert!(queued <= 20 && queued > 0);
    wait_until("the worker is done", || !queue.is_alive());
    let handled = scratch.handled();
    assert_eq!(values(&handled), once_each(0..20));
    let order: Vec<u64> = handled.iter().map(|(v, _)| *v).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>(), "items run in order");
    let pid = handled[0].1;
    assert!(handled.iter().all(|(_, p)| *p == pid), "one worker");
    assert_ne!(pid, std::process::id(), "in another process");
    assert_eq!(queue.len(), 0);
    assert!(queue.is_empty());
}

#[test]
fn start_while_a_worker_runs_appends_without_a_new_worker() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("append");
    let queue = ProcessQueue::new(record);
    assert_eq!(queue.start([scratch.gated(0)]).unwrap(), (true, 1));
    let (spawned_new, queued) = queue.start((1..4).map(|v| scratch.job(v))).unwrap();
    assert!(!spawned_new, "a worker was alive");
    assert_eq!(queued, 4);
    assert!(queue.is_alive());
    scratch.open_gate();
    wait_until("the worker is done", || !queue.is_alive());
    let handled = scratch.handled();
    assert_eq!(values(&handled), once_each(0..4));
    assert!(
        handled.iter().all(|(_, p)| *p == handled[0].1),
        "one worker"
    );
}

#[test]
fn a_worker_exits_when_the_queue_is_empty_and_the_next_start_spawns_a_new_one() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("respawn");
    let queue = ProcessQueue::new(record);
    assert_eq!(queue.start([scratch.job(0)]).unwrap(), (true, 1));
    wait_until("the first worker is done", || !queue.is_alive());
    let first = scratch.handled()[0].1;
    wait_until("the first worker exits", || !running(first));
    let (spawned_new, _) = queue.start([scratch.job(1)]).unwrap();
    assert!(spawned_new);
    wait_until("the second worker is done", || !queue.is_alive());
    let handled = scratch.handled();
    assert_eq!(values(&handled), once_each(0..2));
    assert_ne!(handled[1].1, first, "a new worker process");
}

#[test]
fn start_returns_without_waiting_for_the_handler() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("nonblocking");
    let queue = Arc::new(ProcessQueue::new(record));
    // The handler waits for a gate that is created only after `start` returned: a `start`
    // that waited for the handler would never return (until the bound fails the test).
    let (returned, outcome) = std::sync::mpsc::channel();
    let starter = {
        let queue = Arc::clone(&queue);
        let job = scratch.gated(0);
        std::thread::spawn(move || {
            let _ = returned.send(queue.start([job]).map_err(|e| e.to_string()));
        })
    };
    let started = outcome
        .recv_timeout(BOUND)
        .expect("start waited for the handler");
    assert_eq!(started, Ok((true, 1)));
    bound::join(starter, BOUND, "the starting thread");
    assert!(scratch.handled().is_empty(), "the handler had not finished");
    assert!(queue.is_alive());
    scratch.open_gate();
    wait_until("the worker is done", || !queue.is_alive());
    assert_eq!(values(&scratch.handled()), once_each(0..1));
}

#[test]
fn the_exit_and_append_race_strands_no_item() {
    let _bound = bound::within(TEST_BOUND);
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 30;
    let scratch = Arc::new(Scratch::new("race"));
    let queue = Arc::new(ProcessQueue::new(record));
    let spawned = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (queue, scratch, spawned) = (
                Arc::clone(&queue),
                Arc::clone(&scratch),
                Arc::clone(&spawned),
            );
            std::thread::spawn(move || {
                let mut seed = thread * 7919 + 1;
                for i in 0..PER_THREAD {
                    let (spawned_new, _) =
                        queue.start([scratch.job(thread * PER_THREAD + i)]).unwrap();
                    if spawned_new {
                        spawned.fetch_add(1, Ordering::SeqCst);
                    }
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if i % 5 == 4 {
                        // Append the moment the queue is empty, while the worker that
                        // drained it is still exiting.
                        wait_until("the worker drains", || queue.is_empty());
                        continue;
                    }
                    std::thread::sleep(Duration::from_micros((seed >> 33) % 2000));
                }
            })
        })
        .collect();
    for thread in threads {
        bound::join(thread, BOUND, "an appending thread");
    }
    wait_until("every item is done", || {
        queue.is_empty() && !queue.is_alive()
    });
    let handled = scratch.handled();
    assert_eq!(values(&handled), once_each(0..THREADS * PER_THREAD));
    let workers: std::collections::BTreeSet<u32> = handled.iter().map(|(_, p)| *p).collect();
    let spawned = spawned.load(Ordering::SeqCst);
    assert!(spawned >= 2, "workers retired and were replaced");
    assert!(
        workers.len() as u64 <= spawned,
        "every worker was started by a `start` that said so"
    );
    eprintln!("{} items, {spawned} workers spawned", handled.len());
}

#[test]
fn an_append_the_moment_the_queue_empties_spawns_a_new_worker() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("retire");
    let queue = ProcessQueue::new(record);
    // Under Wine each round's two worker starts take about a second: fewer rounds there.
    let rounds = if cfg!(windows) { 3 } else { 10 };
    for round in 0..rounds {
        let (first, second) = (2 * round, 2 * round + 1);
        queue.start([scratch.job(first)]).unwrap();
        // The last item is reported done in the same step that retires the worker, so once
        // the queue is empty no worker takes items: this start must spawn one, even though
        // the retired process may not have exited yet.
        wait_until("the queue empties", || queue.is_empty());
        let (spawned_new, queued) = queue.start([scratch.job(second)]).unwrap();
        assert!(
            spawned_new,
            "round {round}: the append went to a retired worker"
        );
        assert_eq!(queued, 1);
        wait_until("the item is handled", || {
            values(&scratch.handled()).contains_key(&second)
        });
    }
    wait_until("the worker is done", || !queue.is_alive());
    assert_eq!(values(&scratch.handled()), once_each(0..2 * rounds));
}

#[test]
fn a_sigkilled_workers_item_stays_queued_and_runs_on_the_next_start() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("sigkill");
    let queue = ProcessQueue::new(record);
    queue.start([scratch.gated(0), scratch.job(1)]).unwrap();
    wait_until("the worker runs item 0", || !scratch.started().is_empty());
    let pid = queue.worker_pid().expect("a live worker");
    assert_eq!(scratch.started()[0], (0, pid));
    pid::kill(pid);
    wait_until("the queue sees its worker gone", || !queue.is_alive());
    assert_eq!(queue.len(), 2, "the killed worker's item stays queued");
    assert!(!queue.is_done(), "not done while items wait");
    scratch.open_gate();
    let (spawned_new, queued) = queue.start([]).unwrap();
    assert_eq!((spawned_new, queued), (true, 2));
    wait_until("the new worker is done", || !queue.is_alive());
    let handled = scratch.handled();
    assert_eq!(values(&handled), once_each(0..2));
    assert!(
        handled.iter().all(|(_, p)| *p != pid),
        "run by the new worker"
    );
}

#[test]
fn stop_kills_and_reaps_the_worker_and_keeps_the_items() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("stop");
    let queue = ProcessQueue::new(record);
    queue.start([scratch.gated(0), scratch.job(1)]).unwrap();
    wait_until("the worker runs item 0", || !scratch.started().is_empty());
    let pid = queue.worker_pid().expect("a live worker");
    assert!(queue.kill().unwrap(), "a worker was running");
    assert!(!unreaped_child(pid), "stop reaps the worker");
    assert!(!queue.is_alive());
    assert!(!queue.is_done(), "stopped, but items still wait");
    assert_eq!(queue.len(), 2, "items not done stay queued");
    assert!(!queue.kill().unwrap(), "nothing left to stop");
    scratch.open_gate();
    assert_eq!(queue.start([]).unwrap(), (true, 2));
    wait_until("the new worker is done", || !queue.is_alive());
    assert_eq!(values(&scratch.handled()), once_each(0..2));
}

#[test]
fn clear_drops_the_waiting_items() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("clear");
    let queue = ProcessQueue::new(record);
    queue
        .start([scratch.gated(0), scratch.job(1), scratch.job(2)])
        .unwrap();
    wait_until("the worker runs item 0", || !scratch.started().is_empty());
    assert_eq!(queue.clear(), 2);
    assert_eq!(queue.len(), 1);
    scratch.open_gate();
    wait_until("the worker is done", || !queue.is_alive());
    assert_eq!(values(&scratch.handled()), once_each(0..1));
}

#[test]
fn dropping_the_queue_kills_and_reaps_its_worker() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("drop");
    let queue = ProcessQueue::new(record);
    queue.start([scratch.gated(0)]).unwrap();
    wait_until("the worker runs item 0", || !scratch.started().is_empty());
    let pid = queue.worker_pid().expect("a live worker");
    drop(queue);
    assert!(!unreaped_child(pid), "dropping the queue reaps its worker");
    assert!(scratch.handled().is_empty());
}

#[test]
fn a_panicking_handler_finishes_its_item_and_the_worker_goes_on() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("panic");
    let queue = ProcessQueue::new(record);
    let poison = Job {
        panics: true,
        ..scratch.job(0)
    };
    queue.start([poison, scratch.job(1)]).unwrap();
    wait_until("the worker is done", || !queue.is_alive());
    assert_eq!(queue.len(), 0, "the panicking item is done");
    let started = scratch.started();
    assert_eq!(started.len(), 2);
    assert_eq!(started[0].1, started[1].1, "the same worker went on");
    assert_eq!(values(&scratch.handled()), once_each(1..2));
}

#[test]
fn a_full_queue_takes_none_of_a_batch_and_too_large_items_are_refused() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("full");
    let config = ProcessQueueConfig::default()
        .capacity(3)
        .max_frame_bytes(64 * 1024);
    let queue = ProcessQueue::with_config(record, config).unwrap();
    queue.start([scratch.gated(0), scratch.job(1)]).unwrap();
    match queue.start([scratch.job(2), scratch.job(3)]) {
        Err(Error::ProcessQueueFull {
            capacity: 3,
            len: 2,
            adding: 2,
        }) => {}
        other => panic!("expected a full queue, got {other:?}"),
    }
    assert_eq!(queue.len(), 2);
    let huge = Job {
        log: PathBuf::from("x".repeat(100 * 1024)),
        ..scratch.job(9)
    };
    assert!(matches!(queue.start([huge]), Err(Error::TooLarge { .. })));
    assert_eq!(queue.len(), 2);
    scratch.open_gate();
    wait_until("the worker is done", || !queue.is_alive());
    assert_eq!(values(&scratch.handled()), once_each(0..2));
    assert!(matches!(
        ProcessQueue::with_config(record, ProcessQueueConfig::default().capacity(0)),
        Err(Error::Config { .. })
    ));
}

/// A process that owns a queue whose worker blocks forever, tells the worker's pid, and
/// waits to be killed.
#[derive(Serialize, Deserialize)]
struct QueueOwner {
    job: Job,
}

#[skprocess(outbox = u32)]
impl QueueOwner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let queue = ProcessQueue::new(record);
        queue.start([self.job.clone()])?;
        let deadline = Instant::now() + BOUND;
        let pid = loop {
            if let Some(pid) = queue.worker_pid() {
                break pid;
            }
            if Instant::now() > deadline {
                return Err(Error::Config {
                    problem: "no worker".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        ctx.tell(pid)?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn the_worker_exits_when_its_queues_process_is_sigkilled() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("orphan");
    let owner = QueueOwner {
        job: scratch.gated(0),
    }
    .start()
    .unwrap();
    let worker = owner
        .listen_timeout(BOUND)
        .unwrap()
        .expect("the worker's pid");
    assert!(running(worker));
    pid::kill(owner.pid());
    wait_until("the orphaned worker exits", || !running(worker));
    assert!(scratch.handled().is_empty());
}

#[test]
fn an_item_that_kills_every_worker_is_given_up_after_its_attempts_and_the_rest_run() {
    let _bound = bound::within(TEST_BOUND);
    let scratch = Scratch::new("poison");
    let poison = Job {
        aborts: true,
        ..scratch.job(666)
    };
    let config = ProcessQueueConfig::default().attempts(2);
    let queue = ProcessQueue::with_config(record, config).unwrap();
    queue
        .start([scratch.job(1), poison, scratch.job(2)])
        .unwrap();
    let mut failed = Vec::new();
    wait_until("the poison is given up and the rest handled", || {
        if !queue.is_alive() {
            failed.extend(queue.take_failed().unwrap());
            queue.start([]).unwrap();
        }
        failed.len() == 1 && queue.is_empty()
    });
    assert_eq!(failed[0].value, 666);
    assert_eq!(values(&scratch.handled()), BTreeMap::from([(1, 1), (2, 1)]));
    let poison_starts = scratch.started().iter().filter(|(v, _)| *v == 666).count();
    assert_eq!(poison_starts, 2, "one start per attempt");
}
