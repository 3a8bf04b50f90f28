//! The dispatcher: the one state per pool that owns the [`Scheduler`] and the workers, and
//! the only place their state changes. Everything reaches it as an [`Event`] on one channel —
//! map calls' commands, workers' reports and ends, started workers — handled in the order
//! sent, and it carries out the scheduler's actions. The threads that send serve it in turns
//! (`turns.rs`): a map's caller cuts and sends the chunks of the items it hands over, a
//! worker's reader delivers the results it read and sends the next chunk, and no thread is
//! woken to do either. The dispatcher's own thread ([`run`]) keeps the deadlines (item
//! timeouts) and stops the workers at the end. It never blocks on a worker: each worker's
//! reader is a thread of its own (for processes, the one that started it), and chunk writes
//! go to workers whose reader always drains.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::pool::results::ResultsFrame;
use crate::pool::scheduler::{
    Action, ChunkItems, EncodedItems, JobId, Outcome, Scheduler, Task, WorkerId,
};
use crate::pool::shared_bytes::SharedBytes;
use crate::pool::turns::{Served, TurnReceiver, TurnSender, Turns};
use crate::protocol::pool::{ItemFailure, Measured, Reporting};

/// How long stopping workers may take at close before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the dispatcher waits, before it ends, for killed workers to be reaped.
const REAP_GRACE: Duration = Duration::from_secs(10);

/// What a map call asks of the dispatcher.
pub(crate) enum Command {
    /// A new job; its results go to `results`.
    Submit {
        job: JobId,
        task: Task,
        timeout: Option<Duration>,
        lives: u32,
        results: Sender<JobEvent>,
    },
    /// More items of a job.
    Items { job: JobId, items: EncodedItems },
    /// The job is over (all results taken, or the caller gave up).
    End { job: JobId },
    /// No more jobs will come: stop the workers once the running jobs ended.
    Close,
    /// Kill the workers now; every item not finished fails.
    Terminate,
}

/// What a job's caller receives.
pub(crate) enum JobEvent {
    /// Finished items.
    Results(Vec<Outcome>),
    /// Finished items, as a worker process sent them.
    Frame(ResultsFrame),
    /// The caller's future was dropped.
    Cancelled,
}

/// What a worker reports.
pub(crate) enum Report {
    /// Finished items of `job` as a worker process sent them (read whole: `indices` lists
    /// them); at a chunk's end, how long its items took.
    Frame {
        job: JobId,
        indices: Vec<u64>,
        frame: ResultsFrame,
        measured: Option<Measured>,
    },
    /// Finished items of `job`; at a chunk's end, how long its items took.
    Results {
        job: JobId,
        results: Vec<(u64, Result<SharedBytes, ItemFailure>)>,
        measured: Option<Measured>,
    },
    /// Item `index` of `job` runs since `since`; `spent`: the lives it now counts as spent,
    /// when that changed.
    Running {
        job: JobId,
        index: u64,
        since: Instant,
        spent: Option<u32>,
    },
    /// The worker gave back the items it had not started: from the `next`-th item sent to
    /// it on (see [`WorkerLink::release`]).
    Released { next: u64 },
    /// The worker is gone, and its page says the item it started last: its ordinal, or none
    /// (see `pool/in_hand.rs`). Comes right before its [`Event::Ended`].
    InHand(Option<u64>),
}

/// How events reach the dispatcher: sent, then served by the sender when nobody else is.
pub(crate) type EventSender = TurnSender<Event, Dispatcher>;

/// Everything the dispatcher reacts to.
pub(crate) enum Event {
    Command(Command),
    Report(WorkerId, Report),
    /// The worker ended (and was reaped); how.
    Ended(WorkerId, String),
    /// A worker finished starting: ready, or why not.
    Started(WorkerId, Result<Box<dyn WorkerLink>, Error>),
}

/// The dispatcher's hold on one worker.
pub(crate) trait WorkerLink: Send {
    /// Sends a chunk. A failure means the worker is going away; its end follows as an event.
    fn send_chunk(&self, job: JobId, task: Task, reporting: Reporting, items: ChunkItems<'_>);
    /// Asks the worker to give back every item it has not started; its answer follows as
    /// [`Report::Released`], after the chunks sent before.
    fn release(&self);
    /// Kills the worker; its end follows as an event.
    fn kill(&self);
    /// Asks the worker to exit once idle; its end follows as an event.
    fn stop(&self);
    /// The worker's process id, for a process worker.
    fn pid(&self) -> Option<u32>;
}

/// Starts workers: each start reports back with [`Event::Started`], then the worker's reports
/// and its end follow.
pub(crate) trait Launcher: Send {
    fn launch(&self, worker: WorkerId, events: EventSender);
}

/// The pool's view of its workers' process ids, shared with [`Pool`](crate::Pool).
pub(crate) type WorkerPids = Arc<Mutex<BTreeMap<WorkerId, u32>>>;

/// What each ready worker measured: since when it is ready, its items and the time its
/// chunks took in the worker; shared with [`Pool::status`](crate::Pool::status).
pub(crate) type WorkerTallies = Arc<Mutex<BTreeMap<WorkerId, WorkerTally>>>;

/// One worker's tally.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerTally {
    pub(crate) ready_since: Instant,
    pub(crate) items: u64,
    pub(crate) busy_nanos: u64,
}

/// The dispatcher thread's state.
pub(crate) struct Dispatcher {
    scheduler: Scheduler,
    launcher: Box<dyn Launcher>,
    events: TurnReceiver<Event>,
    /// For launchers, which send back on it.
    events_in: EventSender,
    links: BTreeMap<WorkerId, Box<dyn WorkerLink>>,
    jobs: BTreeMap<JobId, Sender<JobEvent>>,
    pids: WorkerPids,
    closing: bool,
    tallies: WorkerTallies,
    /// Workers killed whose end (reported once reaped) has not come yet: the dispatcher waits
    /// for them before it ends, so `Pool::kill` and `Pool::stop` return with none alive.
    dying: BTreeSet<WorkerId>,
    /// When the thread looks next by itself (its next deadline), as it last saw it: a turn
    /// that brings a sooner deadline wakes it.
    thread_until: Option<Instant>,
}

impl Dispatcher {
    pub(crate) fn new(
        workers: usize,
        chunk_bytes: usize,
        launcher: Box<dyn Launcher>,
        events: TurnReceiver<Event>,
        events_in: EventSender,
        pids: WorkerPids,
    ) -> Self {
        Self {
            scheduler: Scheduler::new(workers, chunk_bytes),
            launcher,
            events,
            events_in,
            links: BTreeMap::new(),
            jobs: BTreeMap::new(),
            pids,
            closing: false,
            tallies: WorkerTallies::default(),
            dying: BTreeSet::new(),
            thread_until: None,
        }
    }

    /// Starts the workers and waits until each is ready or failed; `Err` when none started.
    pub(crate) fn start_workers(&mut self) -> Result<(), Error> {
        self.carry_out();
        while !self.scheduler.settled() {
            let Ok(event) = self.events.recv() else {
                break;
            };
            self.handle(event);
            self.carry_out();
        }
        if self.scheduler.ready_workers() == 0 {
            let detail = self.scheduler.spawn_error().unwrap_or("no worker started");
            return Err(Error::NoWorker {
                reason: detail.to_owned(),
            });
        }
        Ok(())
    }

    /// One event, and what it leads to.
    fn turn(&mut self, event: Event) {
        self.scheduler.set_now(Instant::now());
        self.handle(event);
        self.scheduler.tick(Instant::now());
        self.carry_out();
    }

    /// Whether the pool closed and its jobs ended (or it was terminated): the thread stops
    /// the workers.
    fn finished(&self) -> bool {
        self.closing && self.jobs.is_empty()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Command(command) => self.command(command),
            Event::Report(
                worker,
                Report::Results {
                    job,
                    results,
                    measured,
                },
            ) => {
                self.measured(worker, job, measured);
                self.scheduler.results(worker, job, results);
            }
            Event::Report(
                worker,
                Report::Frame {
                    job,
                    indices,
                    frame,
                    measured,
                },
            ) => {
                self.measured(worker, job, measured);
                self.scheduler.results_frame(worker, job, &indices, frame);
            }
            Event::Report(
                worker,
                Report::Running {
                    job,
                    index,
                    since,
                    spent,
                },
            ) => match spent {
                Some(spent) => {
                    let item = (job, index);
                    self.scheduler.running_spent(worker, item, since, spent);
                }
                None => self.scheduler.running(worker, job, index, since),
            },
            Event::Report(worker, Report::Released { next }) => {
                self.scheduler.released(worker, next);
            }
            Event::Report(worker, Report::InHand(ordinal)) => {
                self.scheduler.in_hand(worker, ordinal);
            }
            Event::Ended(worker, status) => {
                self.dying.remove(&worker);
                self.links.remove(&worker);
                self.pids_lock().remove(&worker);
                self.tallies_lock().remove(&worker);
                self.scheduler.worker_ended(worker, status);
            }
            Event::Started(worker, Ok(link)) => {
                if !self.scheduler.worker_ids().contains(&worker) {
                    link.kill(); // Replaced or terminated while it started.
                    self.dying.insert(worker);
                    return;
                }
                if let Some(pid) = link.pid() {
                    self.pids_lock().insert(worker, pid);
                }
                self.links.insert(worker, link);
                self.tallies_lock().insert(
                    worker,
                    WorkerTally {
                        ready_since: Instant::now(),
                        items: 0,
                        busy_nanos: 0,
                    },
                );
                self.scheduler.worker_ready(worker);
            }
            Event::Started(worker, Err(error)) => {
                self.scheduler.spawn_failed(worker, error.to_string());
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Submit {
                job,
                task,
                timeout,
                lives,
                results,
            } => {
                self.jobs.insert(job, results);
                self.scheduler.job_submitted(job, task, timeout, lives);
            }
            Command::Items { job, items } => self.scheduler.items_added(job, items),
            Command::End { job } => {
                self.jobs.remove(&job);
                self.scheduler.job_ended(job);
            }
            Command::Close => self.closing = true,
            Command::Terminate => {
                self.closing = true;
                self.scheduler.terminate();
            }
        }
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.scheduler.poll_action() {
            match action {
                Action::Spawn(worker) => self.launcher.launch(worker, self.events_in.clone()),
                Action::Send {
                    worker,
                    job,
                    task,
                    reporting,
                    first,
                    count,
                } => {
                    let Some(link) = self.links.get(&worker) else {
                        continue;
                    };
                    match self.scheduler.chunk_items(worker, job, first, count) {
                        Some(items) => link.send_chunk(job, task, reporting, items),
                        // Never so (a chunk is written in the turn that cut it), but should
                        // its items be gone, the worker's end settles whatever it holds.
                        None => link.kill(),
                    }
                }
                Action::Release(worker) => {
                    if let Some(link) = self.links.get(&worker) {
                        link.release();
                    }
                }
                Action::Kill(worker) => {
                    if let Some(link) = self.links.remove(&worker) {
                        link.kill();
                        self.dying.insert(worker);
                    }
                    self.pids_lock().remove(&worker);
                }
                Action::DeliverFrame { job, frame } => {
                    if let Some(sender) = self.jobs.get(&job) {
                        // A caller that is gone ends its job with its next command.
                        let _ = sender.send(JobEvent::Frame(frame));
                    }
                }
                Action::Deliver { job, results } => {
                    if let Some(sender) = self.jobs.get(&job) {
                        // A caller that is gone ends its job with its next command.
                        let _ = sender.send(JobEvent::Results(results));
                    }
                }
            }
        }
    }

    /// Asks every worker to exit, waits for their ends a while, then kills the rest and waits
    /// (bounded) until every killed worker was reaped.
    fn stop_workers(&mut self) {
        for link in self.links.values() {
            link.stop();
        }
        self.await_ends(STOP_GRACE, |dispatcher| dispatcher.links.is_empty());
        for (worker, link) in std::mem::take(&mut self.links) {
            link.kill();
            self.dying.insert(worker);
        }
        self.await_ends(REAP_GRACE, |dispatcher| dispatcher.dying.is_empty());
        self.pids_lock().clear();
    }

    /// Takes the workers' ends for at most `grace`, until `done`; a worker that starts now is
    /// killed.
    fn await_ends(&mut self, grace: Duration, done: fn(&Self) -> bool) {
        let deadline = Instant::now().checked_add(grace);
        while !done(self) {
            let wait = deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match self.events.recv_timeout(wait) {
                Ok(Event::Ended(worker, _)) => {
                    self.links.remove(&worker);
                    self.dying.remove(&worker);
                }
                Ok(Event::Started(worker, Ok(link))) => {
                    link.kill();
                    self.dying.insert(worker);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    /// The workers' tallies, for [`Pool::status`](crate::Pool::status).
    pub(crate) fn tallies(&self) -> WorkerTallies {
        Arc::clone(&self.tallies)
    }

    fn tallies_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WorkerId, WorkerTally>> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts what a worker measured with its results, before the results themselves: they
    /// may free a worker, and what happens then (the next chunk's size, whether a release is
    /// worth asking) depends on the cost.
    fn measured(&mut self, worker: WorkerId, job: JobId, measured: Option<Measured>) {
        if let Some(measured) = measured {
            self.tally(worker, measured);
            self.scheduler.measured(job, measured.items, measured.nanos);
        }
    }

    fn tally(&self, worker: WorkerId, measured: Measured) {
        if let Some(tally) = self.tallies_lock().get_mut(&worker) {
            tally.items = tally.items.saturating_add(u64::from(measured.items));
            tally.busy_nanos = tally.busy_nanos.saturating_add(measured.nanos);
        }
    }

    fn pids_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WorkerId, u32>> {
        self.pids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Served for Dispatcher {
    fn serve_waiting(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.turn(event);
        }
    }

    fn wants_thread(&self) -> bool {
        self.finished()
            || match (self.scheduler.next_deadline(), self.thread_until) {
                (Some(deadline), Some(until)) => deadline < until,
                (deadline, until) => deadline.is_some() && until.is_none(),
            }
    }
}

/// The dispatcher's thread: keeps the deadlines, serves what senders left while it held the
/// state, and at the end stops the workers; then takes the dispatcher out of the turns, so
/// nothing serves it any more (and its own sender no longer keeps it).
pub(crate) fn run(turns: &Turns<Dispatcher>) {
    /// However the thread ends (a panic too), the dispatcher leaves the turns.
    struct TakeOut<'a>(&'a Turns<Dispatcher>);
    impl Drop for TakeOut<'_> {
        fn drop(&mut self) {
            drop(self.0.end());
        }
    }
    let _take_out = TakeOut(turns);
    let mut guard = turns.lock();
    loop {
        let Some(dispatcher) = guard.as_mut() else {
            return;
        };
        dispatcher.serve_waiting();
        dispatcher.scheduler.tick(Instant::now());
        dispatcher.carry_out();
        if dispatcher.finished() {
            dispatcher.stop_workers();
            return;
        }
        let deadline = dispatcher.scheduler.next_deadline();
        dispatcher.thread_until = deadline;
        let timeout = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        turns.idle(guard, timeout);
        guard = turns.lock();
    }
}
