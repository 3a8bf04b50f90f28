//! The pool's scheduler: which items go to which worker, and what a worker's death or a late
//! item means for them. A state machine without I/O or clocks: the dispatcher feeds it events
//! (a job, its items, results, a worker's start, end or lateness, the time) and carries out
//! the [`Action`]s it asks for (spawn, send a chunk, kill, deliver results).
//!
//! - **Chunks** adapt to the measured cost per item: about [`TARGET_CHUNK`] of work each, never
//!   more than a fair share of what is queued, so the tail stays balanced. A job starts from
//!   the cost its task last measured, so only a function's first map sizes chunks blind. Each worker has at
//!   most [`PIPELINE`] chunks in flight, so it never waits for the next.
//! - **A worker's items run in the order sent**, so the first unreported one is the one
//!   running. Workers say which item runs (`running`) once it has run for a while; a death
//!   after that fails exactly that item (or retries it while lives remain), and the items after
//!   it go back to the queue. A worker process with a page (`in_hand.rs`) says at its death
//!   which item it started last (`in_hand`), which pins any crash exactly. Without either a
//!   death cannot be pinned on one item: the unreported
//!   items are requeued as *suspects*, which run isolated (each item's start reported before it
//!   runs), so a crash among them is pinned exactly. A finished item whose result was lost
//!   with its worker runs again.
//! - **Timeouts** count from an item's reported start; the late worker is killed and replaced.
//! - **Balanced ends**: when a worker has nothing left and no job has queued items, a worker
//!   that still holds items it has not started (worth at least
//!   [`RELEASE_WORTH`](rebalance::RELEASE_WORTH)) is asked
//!   to give them back ([`Action::Release`]); its answer names the first item it will never
//!   start, and those items go back to the queue for whoever is free. Until it answers the
//!   worker gets no chunk, so the answer is exact; should it die first, its items are
//!   settled as for any death.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::pool::items::Items;
pub(crate) use crate::pool::items::{ChunkItems, EncodedItems, Item, ItemView, JobId};
use crate::pool::results::ResultsFrame;
use crate::pool::shared_bytes::SharedBytes;
use crate::protocol::pool::{FunctionOffsets, ItemFailure, Reporting};

/// Work per chunk the scheduler aims for, once the cost per item is known.
pub(crate) const TARGET_CHUNK: Duration = Duration::from_millis(4);
/// Least work per chunk worth a round trip, once the cost per item is known.
const MIN_CHUNK_WORK: Duration = Duration::from_micros(250);
/// Chunk size while the cost per item is unknown (still at most a fair share of the queue).
const FIRST_CHUNK: usize = 256;
/// Most items in one chunk.
const MAX_CHUNK: usize = 8192;
/// Chunks a worker may have in flight: one running, one waiting.
pub(crate) const PIPELINE: usize = 2;
/// Tasks whose last measured cost per item a pool remembers, so the next map of the same
/// function starts with chunks of its size rather than blind ones.
const REMEMBERED_COSTS: usize = 16;

/// A worker process (or thread); never reused, so a dead worker's late events are ignored.
pub(crate) type WorkerId = u64;

/// What runs a job's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// A `fn` pointer and its trampoline, as offsets from the base symbol.
    Function { offset: FunctionOffsets },
    /// A registered `#[skprocess]` type.
    Process { key: &'static str },
}

/// Why an item has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemError {
    /// The worker reported it.
    Failed(ItemFailure),
    /// Its worker died while running it; how.
    Crashed(String),
    /// It ran longer than the job's timeout; its worker was killed.
    TimedOut(Duration),
    /// No worker could be started to run it.
    NoWorker(String),
    /// The pool was terminated.
    Terminated,
    /// A cluster pool lost it: the Redis server could not be reached or lost the map's state,
    /// or the hosts that held it stopped (see `cluster/`); why, naming the host.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Cluster(String),
}

/// One item's outcome: its index and its encoded output or why it has none.
pub(crate) type Outcome = (u64, Result<SharedBytes, ItemError>);

/// What the scheduler asks the dispatcher to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Start a worker with this id.
    Spawn(WorkerId),
    /// Send `count` items of `job` to `worker` as one chunk, the first of ordinal `first`:
    /// [`chunk_items`](Scheduler::chunk_items) lends them, where they wait in flight, so an
    /// item is neither copied nor counted again on its way out.
    Send {
        worker: WorkerId,
        job: JobId,
        task: Task,
        reporting: Reporting,
        first: u64,
        count: usize,
    },
    /// Ask this worker to give back the items it has not started
    /// ([`released`](Scheduler::released) follows, unless it dies).
    Release(WorkerId),
    /// Kill this worker (a replacement is already asked for).
    Kill(WorkerId),
    /// Results of `job`'s items.
    Deliver { job: JobId, results: Vec<Outcome> },
    /// Results of `job`'s items, as a worker process sent them.
    DeliverFrame { job: JobId, frame: ResultsFrame },
}

/// A job's settings and queue.
struct Job {
    task: Task,
    timeout: Option<Duration>,
    /// A `#[skprocess]` item's lives: one budget for its crashes and the failures its engine
    /// counts (1 for a function, whose crash is final).
    lives: u32,
    queue: Items,
    /// Measured time per item, smoothed.
    cost: Option<Duration>,
}

/// The item a worker reported running.
#[derive(Debug, Clone, Copy)]
struct Running {
    index: u64,
    since: Instant,
}

/// A live worker.
struct Worker {
    id: WorkerId,
    ready: bool,
    /// Items sent and not reported, in the order they run, with their job.
    in_flight: Items,
    /// The ordinal of the next item sent to it (the last of `in_flight` has `sent - 1`):
    /// items are counted in the order sent, from 0, and from the first item given back after
    /// a release, as the worker counts them too.
    sent: u64,
    /// One past the last ordinal of each chunk in flight.
    chunk_ends: VecDeque<u64>,
    /// A release was asked for and not answered.
    releasing: bool,
    running: Option<Running>,
    /// The item it should be running now and when the scheduler saw it become the next (its
    /// chunk was sent to an idle worker, or the item before it was reported): a worker that
    /// stays silent past the job's timeout and [`HANDED_GRACE`] is stuck (stopped by a
    /// signal, a debugger, a frozen cgroup), since a live one reports within a tick.
    handed: Option<(u64, Instant)>,
    /// What the worker's page said once it was gone: the ordinal of the item it started last,
    /// or `Some(None)` when it started none; `None` while it lives, or when it has no page.
    in_hand: Option<Option<u64>>,
}

/// Beyond an item's timeout, how long a worker may stay silent about the item it was handed
/// before it counts as stuck: room for a large chunk's transfer and decoding.
pub(crate) const HANDED_GRACE: Duration = Duration::from_millis(250);

impl Worker {
    /// The ordinal of the first item in flight.
    fn front_ordinal(&self) -> u64 {
        self.sent.saturating_sub(self.in_flight.len() as u64)
    }

    fn new(id: WorkerId) -> Self {
        Self {
            id,
            ready: false,
            in_flight: Items::default(),
            sent: 0,
            chunk_ends: VecDeque::new(),
            releasing: false,
            running: None,
            handed: None,
            in_hand: None,
        }
    }
}

/// The scheduler of one pool.
pub(crate) struct Scheduler {
    /// One per worker slot; `None` while the slot has no worker and none is starting.
    slots: Vec<Option<Worker>>,
    jobs: BTreeMap<JobId, Job>,
    /// The job the next chunk comes from first (round robin).
    next_job: JobId,
    next_worker: WorkerId,
    /// Why the last start failed, while no worker is up.
    spawn_error: Option<String>,
    terminated: bool,
    /// Most bytes of items in one chunk (a chunk always has at least one item).
    chunk_bytes: usize,
    actions: VecDeque<Action>,
    /// The time the driver last gave ([`set_now`](Scheduler::set_now)).
    now: Instant,
    /// The last measured cost per item of recent tasks, latest first: where a new job of
    /// the same task starts.
    costs: VecDeque<(Task, Duration)>,
}

impl Scheduler {
    /// Tells the scheduler the time, before the driver hands it an event.
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// A scheduler for `workers` slots whose chunks carry at most `chunk_bytes` of items;
    /// asks for the workers at once.
    pub(crate) fn new(workers: usize, chunk_bytes: usize) -> Self {
        let mut scheduler = Self {
            chunk_bytes,
            slots: (0..workers).map(|_| None).collect(),
            jobs: BTreeMap::new(),
            next_job: 0,
            next_worker: 0,
            spawn_error: None,
            terminated: false,
            actions: VecDeque::new(),
            now: Instant::now(),
            costs: VecDeque::new(),
        };
        for slot in 0..workers {
            scheduler.spawn_into(slot);
        }
        scheduler
    }

    /// The next thing to do.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Workers up and ready.
    pub(crate) fn ready_workers(&self) -> usize {
        self.slots.iter().flatten().filter(|w| w.ready).count()
    }

    /// Ids of the workers that exist (ready or starting).
    pub(crate) fn worker_ids(&self) -> Vec<WorkerId> {
        self.slots.iter().flatten().map(|w| w.id).collect()
    }

    /// Whether every slot has a worker that finished starting, or failed.
    pub(crate) fn settled(&self) -> bool {
        self.slots
            .iter()
            .all(|w| w.as_ref().is_none_or(|w| w.ready))
    }

    /// Why workers cannot start, when none is up.
    pub(crate) fn spawn_error(&self) -> Option<&str> {
        self.spawn_error.as_deref()
    }

    /// A new job.
    pub(crate) fn job_submitted(
        &mut self,
        job: JobId,
        task: Task,
        timeout: Option<Duration>,
        lives: u32,
    ) {
        let cost = self
            .costs
            .iter()
            .find_map(|(known, cost)| (*known == task).then_some(*cost));
        let settings = Job {
            task,
            timeout,
            lives: lives.max(1),
            queue: Items::default(),
            cost,
        };
        self.jobs.insert(job, settings);
    }

    /// More items of `job`.
    pub(crate) fn items_added(&mut self, job: JobId, items: EncodedItems) {
        if self.terminated {
            let results = items
                .indices()
                .map(|index| (index, Err(ItemError::Terminated)))
                .collect();
            self.actions.push_back(Action::Deliver { job, results });
            return;
        }
        let Some(settings) = self.jobs.get_mut(&job) else {
            return;
        };
        settings.queue.push_batch(job, items);
        self.respawn_missing();
        self.fail_queue_without_workers();
        self.fill();
    }

    /// The job is over (finished or cancelled): its queue goes, and workers still running
    /// its items are killed and replaced (their other items are requeued), so a cancelled
    /// map stops costing work.
    pub(crate) fn job_ended(&mut self, job: JobId) {
        self.jobs.remove(&job);
        for slot in 0..self.slots.len() {
            let busy_with_job = self.slots[slot]
                .as_ref()
                .is_some_and(|w| w.in_flight.has_job(job));
            if !busy_with_job {
                continue;
            }
            if let Some(id) = self.slots[slot].as_ref().map(|w| w.id) {
                self.actions.push_back(Action::Kill(id));
            }
            self.bury(slot, None);
            self.spawn_into(slot);
        }
        self.fill();
    }

    /// A worker proved its build and is ready for chunks.
    pub(crate) fn worker_ready(&mut self, worker: WorkerId) {
        if let Some(w) = self.worker_mut(worker) {
            w.ready = true;
            self.spawn_error = None;
        }
        self.fill();
    }

    /// A worker could not be started.
    pub(crate) fn spawn_failed(&mut self, worker: WorkerId, error: String) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        self.slots[slot] = None;
        self.spawn_error = Some(error);
        self.fail_queue_without_workers();
    }

    /// Finished items, in the order the worker ran them.
    pub(crate) fn results(
        &mut self,
        worker: WorkerId,
        job: JobId,
        results: Vec<(u64, Result<SharedBytes, ItemFailure>)>,
    ) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        // Checked whole before any is taken, so a bad report loses none of its items.
        if !self.take_reported(slot, job, results.iter().map(|(index, _)| *index)) {
            return self.protocol_violation(slot);
        }
        let delivered: Vec<Outcome> = results
            .into_iter()
            .map(|(index, outcome)| (index, outcome.map_err(ItemError::Failed)))
            .collect();
        if self.jobs.contains_key(&job) && !delivered.is_empty() {
            self.actions.push_back(Action::Deliver {
                job,
                results: delivered,
            });
        }
        self.fill();
    }

    /// Finished items of a worker process, in the order it ran them: `indices` lists the
    /// results in `frame`.
    pub(crate) fn results_frame(
        &mut self,
        worker: WorkerId,
        job: JobId,
        indices: &[u64],
        frame: ResultsFrame,
    ) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        // Checked whole before any is taken, so a bad report loses none of its items.
        if !self.take_reported(slot, job, indices.iter().copied()) {
            return self.protocol_violation(slot);
        }
        if self.jobs.contains_key(&job) && !indices.is_empty() {
            self.actions.push_back(Action::DeliverFrame { job, frame });
        }
        self.fill();
    }

    /// The worker runs item `index` of `job` since `since`; everything before it is reported.
    /// A second report of the same item keeps the first start.
    pub(crate) fn running(&mut self, worker: WorkerId, job: JobId, index: u64, since: Instant) {
        self.running_item(worker, (job, index), since, None);
    }

    /// As [`running`](Self::running), for a `#[skprocess]` item that now counts `spent`
    /// lives as spent (its engine spent one, or it is finishing).
    pub(crate) fn running_spent(
        &mut self,
        worker: WorkerId,
        (job, index): (JobId, u64),
        since: Instant,
        spent: u32,
    ) {
        self.running_item(worker, (job, index), since, Some(spent));
    }

    fn running_item(
        &mut self,
        worker: WorkerId,
        (job, index): (JobId, u64),
        since: Instant,
        spent: Option<u32>,
    ) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        let Some(w) = self.slots[slot].as_mut() else {
            return;
        };
        if w.in_flight.front().map(|head| (head.job, head.index)) != Some((job, index)) {
            return self.protocol_violation(slot);
        }
        let Some((_, item)) = w.in_flight.front_mut() else {
            return self.protocol_violation(slot);
        };
        if let Some(spent) = spent {
            item.spent = item.spent.max(spent);
        }
        let since = match w.running {
            Some(running) if running.index == index => running.since,
            _ => since,
        };
        w.running = Some(Running { index, since });
    }

    /// A worker that is gone started item `ordinal` last (or none): said by its page, right
    /// before its end, so the end pins a crash on exactly that item.
    pub(crate) fn in_hand(&mut self, worker: WorkerId, ordinal: Option<u64>) {
        if let Some(w) = self.worker_mut(worker) {
            w.in_hand = Some(ordinal);
        }
    }

    /// A worker ended (its connection closed and it was reaped); `status` says how.
    pub(crate) fn worker_ended(&mut self, worker: WorkerId, status: String) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        let was_ready = self.slots[slot].as_ref().is_some_and(|w| w.ready);
        self.bury(slot, Some(&ItemError::Crashed(status.clone())));
        if !was_ready {
            self.spawn_error = Some(format!("a worker {status} before it was ready"));
            self.fail_queue_without_workers();
            return;
        }
        self.spawn_into(slot);
        self.fill();
    }

    /// Kills the workers whose running item is past its job's timeout.
    pub(crate) fn tick(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            let Some(limit) = self.overrun(slot, now) else {
                continue;
            };
            if let Some(id) = self.slots[slot].as_ref().map(|w| w.id) {
                self.actions.push_back(Action::Kill(id));
            }
            self.bury(slot, Some(&ItemError::TimedOut(limit)));
            self.spawn_into(slot);
        }
        self.fill();
    }

    /// When [`tick`](Scheduler::tick) should next run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        (0..self.slots.len())
            .filter_map(|slot| self.deadline_of(slot).map(|(deadline, _)| deadline))
            .min()
    }

    /// Everything queued or running fails with [`ItemError::Terminated`]; the workers are
    /// to be killed and no more are started.
    pub(crate) fn terminate(&mut self) {
        self.terminated = true;
        for slot in 0..self.slots.len() {
            if let Some(id) = self.slots[slot].as_ref().map(|w| w.id) {
                self.actions.push_back(Action::Kill(id));
            }
            self.bury(slot, Some(&ItemError::Terminated));
        }
        let jobs: Vec<JobId> = self.jobs.keys().copied().collect();
        for job in jobs {
            self.fail_queue(job, &ItemError::Terminated);
        }
    }

    fn deadline_of(&self, slot: usize) -> Option<(Instant, Duration)> {
        let worker = self.slots[slot].as_ref()?;
        let front = worker.in_flight.front()?;
        let limit = self.jobs.get(&front.job)?.timeout?;
        match (worker.running, worker.handed) {
            (Some(running), _) => Some((running.since.checked_add(limit)?, limit)),
            (None, Some((index, since))) if index == front.index => {
                let silent = limit.checked_add(HANDED_GRACE)?;
                Some((since.checked_add(silent)?, limit))
            }
            _ => None,
        }
    }

    fn overrun(&self, slot: usize, now: Instant) -> Option<Duration> {
        let (deadline, limit) = self.deadline_of(slot)?;
        (now >= deadline).then_some(limit)
    }

    fn spawn_into(&mut self, slot: usize) {
        if self.terminated {
            self.slots[slot] = None;
            return;
        }
        let id = self.next_worker;
        self.next_worker += 1;
        self.slots[slot] = Some(Worker::new(id));
        self.actions.push_back(Action::Spawn(id));
    }

    /// Asks again for workers of empty slots when there is work (after failed starts).
    fn respawn_missing(&mut self) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_none() {
                self.spawn_into(slot);
            }
        }
    }

    /// With no worker up or starting, queued items cannot run: they fail.
    fn fail_queue_without_workers(&mut self) {
        if self.slots.iter().any(Option::is_some) {
            return;
        }
        let reason = self
            .spawn_error
            .clone()
            .unwrap_or_else(|| "no worker is running".to_owned());
        let jobs: Vec<JobId> = self.jobs.keys().copied().collect();
        for job in jobs {
            self.fail_queue(job, &ItemError::NoWorker(reason.clone()));
        }
    }

    fn fail_queue(&mut self, job: JobId, error: &ItemError) {
        let Some(settings) = self.jobs.get_mut(&job) else {
            return;
        };
        if settings.queue.is_empty() {
            return;
        }
        let results = std::mem::take(&mut settings.queue)
            .heads()
            .map(|head| (head.index, Err(error.clone())))
            .collect();
        self.actions.push_back(Action::Deliver { job, results });
    }

    /// Removes a worker and settles its unreported items: the running one fails with `error`
    /// (or is retried while it has lives), the rest are requeued — as suspects when nothing
    /// says which one was running. Without an error (a worker killed for a cancelled job),
    /// every item is requeued.
    fn bury(&mut self, slot: usize, error: Option<&ItemError>) {
        let Some(worker) = self.slots[slot].take() else {
            return;
        };
        let front = worker.front_ordinal();
        let mut in_flight = worker.in_flight;
        let Some(error) = error else {
            return self.requeue(in_flight, false);
        };
        let mut suspects = false;
        let pinned = match (worker.in_hand, worker.running) {
            // Its page says which item it started last: that one, if still unreported, is the
            // one it died holding; the items before it finished and their results were lost,
            // the items after it never started. No suspects.
            (Some(in_hand), _) => in_hand
                .and_then(|ordinal| ordinal.checked_sub(front))
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| in_flight.remove(at)),
            (None, Some(running)) => match in_flight.front() {
                Some(head) if head.index == running.index => in_flight.pop_front(),
                _ => None,
            },
            (None, None) => {
                suspects = matches!(error, ItemError::Crashed(_));
                None
            }
        };
        if let Some((job, item)) = pinned {
            self.settle_running(job, item, error);
        }
        if matches!(error, ItemError::Terminated) {
            let mut by_job: BTreeMap<JobId, Vec<Outcome>> = BTreeMap::new();
            for head in in_flight.heads() {
                let failed = (head.index, Err(error.clone()));
                by_job.entry(head.job).or_default().push(failed);
            }
            for (job, results) in by_job {
                self.deliver_if_live(job, results);
            }
            return;
        }
        self.requeue(in_flight, suspects);
    }

    /// Puts items back at the front of their jobs' queues, in their order.
    fn requeue(&mut self, items: Items, suspects: bool) {
        let mut items = if suspects {
            items.into_suspects()
        } else {
            items
        };
        while let Some(job) = items.front().map(|head| head.job) {
            // The items up to the next of another job: a job's items are rarely interleaved.
            let run = items.heads().take_while(|head| head.job == job).count();
            let rest = items.split_off(run);
            if let Some(settings) = self.jobs.get_mut(&job) {
                settings.queue.prepend(items);
            }
            items = rest;
        }
    }

    /// The item a worker died running: a crash spends one of its lives and is retried while
    /// some are left; anything else fails it.
    fn settle_running(&mut self, job: JobId, mut item: Item, error: &ItemError) {
        let Some(settings) = self.jobs.get_mut(&job) else {
            return;
        };
        item.spent = item.spent.saturating_add(1);
        if matches!(error, ItemError::Crashed(_)) && item.spent < settings.lives {
            item.suspect = true;
            settings.queue.push_front(job, item);
            return;
        }
        self.deliver_if_live(job, vec![(item.index, Err(error.clone()))]);
    }

    fn deliver_if_live(&mut self, job: JobId, results: Vec<Outcome>) {
        if self.jobs.contains_key(&job) {
            self.actions.push_back(Action::Deliver { job, results });
        }
    }

    /// Removes the worker's first unreported items when they are `results`' items of `job`,
    /// in order; changes nothing otherwise.
    fn take_reported(
        &mut self,
        slot: usize,
        job: JobId,
        indices: impl ExactSizeIterator<Item = u64>,
    ) -> bool {
        let Some(worker) = self.slots[slot].as_mut() else {
            return false;
        };
        let count = indices.len();
        let matches = count <= worker.in_flight.len()
            && worker
                .in_flight
                .heads()
                .zip(indices)
                .all(|(head, index)| head.job == job && head.index == index);
        if !matches {
            return false;
        }
        if count == 0 {
            return true;
        }
        let end = worker.front_ordinal().saturating_add(count as u64);
        worker.in_flight.drain_front(count);
        // A running item is always the first unreported one, and it was just reported.
        worker.running = None;
        worker.handed = worker.in_flight.front().map(|head| (head.index, self.now));
        while worker
            .chunk_ends
            .front()
            .is_some_and(|&chunk_end| chunk_end <= end)
        {
            worker.chunk_ends.pop_front();
        }
        true
    }

    /// A worker that says something impossible is killed and replaced.
    fn protocol_violation(&mut self, slot: usize) {
        if let Some(id) = self.slots[slot].as_ref().map(|w| w.id) {
            self.actions.push_back(Action::Kill(id));
        }
        let error = ItemError::Crashed("sent a malformed report and was killed".into());
        self.bury(slot, Some(&error));
        self.spawn_into(slot);
    }

    /// A worker ran `items` items of `job` in `nanos`: updates the job's cost per item, which
    /// the next jobs of its task start from.
    pub(crate) fn measured(&mut self, job: JobId, items: u32, nanos: u64) {
        let (Some(settings), false) = (self.jobs.get_mut(&job), items == 0) else {
            return;
        };
        let sample = Duration::from_nanos(nanos) / items;
        let cost = match settings.cost {
            None => sample,
            Some(cost) => (cost * 3 + sample) / 4,
        };
        settings.cost = Some(cost);
        let task = settings.task;
        self.costs.retain(|(known, _)| *known != task);
        self.costs.push_front((task, cost));
        self.costs.truncate(REMEMBERED_COSTS);
    }

    /// Sends chunks to every ready worker with room in its pipeline.
    fn fill(&mut self) {
        if self.terminated {
            return;
        }
        let workers = self.slots.len().max(1);
        // One chunk at a time to the emptiest pipeline (the first such slot on a tie), so
        // work spreads before pipelines fill and a worker that ran dry is served first.
        while let Some(slot) = self.emptiest_with_room() {
            let Some(job) = self.pick_job() else {
                break;
            };
            self.send_chunk(slot, job, workers);
        }
        self.rebalance();
    }

    fn emptiest_with_room(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&slot| self.has_room(slot))
            .min_by_key(|&slot| self.slots[slot].as_ref().map_or(0, |w| w.chunk_ends.len()))
    }

    fn has_room(&self, slot: usize) -> bool {
        self.slots[slot]
            .as_ref()
            .is_some_and(|w| w.ready && !w.releasing && w.chunk_ends.len() < PIPELINE)
    }

    /// The next job with queued items, round robin from [`next_job`](Scheduler::next_job).
    fn pick_job(&mut self) -> Option<JobId> {
        let waiting = |(id, job): (&JobId, &Job)| (!job.queue.is_empty()).then_some(*id);
        let job = self
            .jobs
            .range(self.next_job..)
            .find_map(waiting)
            .or_else(|| self.jobs.range(..self.next_job).find_map(waiting))?;
        self.next_job = job.wrapping_add(1);
        Some(job)
    }

    fn send_chunk(&mut self, slot: usize, job: JobId, workers: usize) {
        let (Some(settings), Some(worker)) = (self.jobs.get_mut(&job), self.slots[slot].as_mut())
        else {
            return;
        };
        let size = chunk_size(settings.cost, settings.queue.len(), workers);
        // Suspects run one by one, each start reported; a job with a timeout needs to hear
        // which item runs; any other, only results.
        let reporting = match (settings.queue.front(), settings.timeout) {
            (Some(head), _) if head.suspect => Reporting::Each,
            (_, Some(_)) => Reporting::Running,
            _ => Reporting::Results,
        };
        let was_idle = worker.in_flight.is_empty();
        // Straight from the queue to the worker's items in flight, where the chunk is lent
        // from to be written: runs of the caller's batches move whole.
        let count = settings
            .queue
            .move_chunk(&mut worker.in_flight, size, self.chunk_bytes);
        let first = worker.sent;
        worker.sent = first.saturating_add(count as u64);
        worker.chunk_ends.push_back(worker.sent);
        if was_idle {
            worker.handed = worker.in_flight.front().map(|head| (head.index, self.now));
        }
        self.actions.push_back(Action::Send {
            worker: worker.id,
            job,
            task: settings.task,
            reporting,
            first,
            count,
        });
    }

    /// The items of the chunk an [`Action::Send`] asks for (its worker, job, first ordinal
    /// and count), where they wait in flight; `None` when the worker no longer holds them all.
    pub(crate) fn chunk_items(
        &self,
        worker: WorkerId,
        job: JobId,
        first: u64,
        count: usize,
    ) -> Option<ChunkItems<'_>> {
        let w = self.slots.iter().flatten().find(|w| w.id == worker)?;
        let start = usize::try_from(first.checked_sub(w.front_ordinal())?).ok()?;
        w.in_flight.chunk(job, start, count)
    }

    fn slot_of(&self, worker: WorkerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.id == worker))
    }

    fn worker_mut(&mut self, worker: WorkerId) -> Option<&mut Worker> {
        self.slots.iter_mut().flatten().find(|w| w.id == worker)
    }

    /// Unique items queued in all jobs, for tests.
    #[cfg(test)]
    fn queued(&self) -> std::collections::BTreeSet<u64> {
        self.jobs
            .values()
            .flat_map(|j| j.queue.heads().map(|head| head.index))
            .collect()
    }
}

/// Items per chunk: about [`TARGET_CHUNK`] of work at `cost` per item, and a fair share of the
/// `queued` items among `workers` so the tail stays balanced — but never less than
/// [`MIN_CHUNK_WORK`] of work, where a smaller share would cost more in round trips than it
/// saves in balance. At least one item, at most [`MAX_CHUNK`].
pub(crate) fn chunk_size(cost: Option<Duration>, queued: usize, workers: usize) -> usize {
    let fair = queued.div_ceil(workers.saturating_mul(PIPELINE).max(1));
    let Some(cost) = cost else {
        return FIRST_CHUNK.min(fair).clamp(1, MAX_CHUNK);
    };
    let items_in = |work: Duration| {
        let nanos = cost.as_nanos().max(1);
        usize::try_from(work.as_nanos() / nanos).unwrap_or(MAX_CHUNK)
    };
    let share = fair.max(items_in(MIN_CHUNK_WORK));
    items_in(TARGET_CHUNK)
        .min(share)
        .min(queued)
        .clamp(1, MAX_CHUNK)
}

#[path = "rebalance.rs"]
mod rebalance;

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
