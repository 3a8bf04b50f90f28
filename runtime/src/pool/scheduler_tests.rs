//! The scheduler with plain values: every crash position, timeouts, lives, suspects, and a
//! random storm of deaths in which every item is still accounted for exactly once.

use super::*;
use std::collections::BTreeSet;

const TASK: Task = Task::Function {
    offset: FunctionOffsets {
        trampoline: 0,
        function: 0,
    },
};

fn items(range: std::ops::Range<u64>) -> EncodedItems {
    let mut batch = crate::pool::items::ItemBatch::default();
    for i in range {
        let pushed = batch.push(i, |buffer| {
            buffer.push(i as u8);
            Ok::<(), ()>(())
        });
        assert!(pushed.is_ok());
    }
    batch.finish()
}

/// Drains the actions: spawns, sends (worker, job, isolated, indices), kills, deliveries.
#[derive(Default, Debug)]
struct Drained {
    spawned: Vec<WorkerId>,
    sent: Vec<(WorkerId, JobId, bool, Vec<u64>)>,
    killed: Vec<WorkerId>,
    released: Vec<WorkerId>,
    delivered: Vec<(JobId, u64, Result<SharedBytes, ItemError>)>,
}

fn drain(s: &mut Scheduler) -> Drained {
    let mut d = Drained::default();
    while let Some(action) = s.poll_action() {
        match action {
            Action::Spawn(id) => d.spawned.push(id),
            Action::Send {
                worker,
                job,
                reporting,
                first,
                count,
                ..
            } => {
                // A send the test overtook (its worker ended since) is moot, as for the
                // dispatcher, which carries out each turn's actions before the next event.
                if let Some(items) = s.chunk_items(worker, job, first, count) {
                    assert_eq!(items.len(), count);
                    let indices = items.iter().map(|i| i.index).collect();
                    d.sent.push((worker, job, reporting.each(), indices));
                }
            }
            Action::Kill(id) => d.killed.push(id),
            Action::Release(id) => d.released.push(id),
            Action::DeliverFrame { job, frame } => frame.each(|index, outcome| {
                let outcome = outcome
                    .map(|bytes| SharedBytes::from(bytes.to_vec()))
                    .map_err(ItemError::Failed);
                d.delivered.push((job, index, outcome));
            }),
            Action::Deliver { job, results } => d
                .delivered
                .extend(results.into_iter().map(|(i, r)| (job, i, r))),
        }
    }
    d
}

fn ok(indices: &[u64]) -> Vec<(u64, Result<SharedBytes, ItemFailure>)> {
    indices
        .iter()
        .map(|&i| (i, Ok(SharedBytes::from(vec![i as u8]))))
        .collect()
}

/// A scheduler with `n` ready workers (ids 0..n) and job 1 submitted.
fn ready(n: usize, timeout: Option<Duration>, lives: u32) -> Scheduler {
    let mut s = Scheduler::new(n, 1 << 20);
    assert_eq!(drain(&mut s).spawned, (0..n as u64).collect::<Vec<_>>());
    for id in 0..n as u64 {
        s.worker_ready(id);
    }
    s.job_submitted(1, TASK, timeout, lives);
    s
}

#[test]
fn chunks_start_small_then_follow_the_measured_cost_within_a_fair_share() {
    assert_eq!(chunk_size(None, 100_000, 2), FIRST_CHUNK);
    assert_eq!(chunk_size(None, 10, 2), 3);
    assert_eq!(
        chunk_size(Some(Duration::from_nanos(100)), 100_000, 2),
        25_000.min(MAX_CHUNK)
    );
    assert_eq!(
        chunk_size(Some(Duration::from_nanos(1000)), 100_000, 2),
        4000
    );
    assert_eq!(chunk_size(Some(Duration::from_millis(5)), 1000, 2), 1);
    assert_eq!(chunk_size(Some(Duration::ZERO), 0, 2), 1);
}

#[test]
fn a_new_job_of_a_task_starts_from_the_cost_its_task_last_measured() {
    let mut s = ready(2, None, 1);
    s.items_added(1, items(0..2));
    let d = drain(&mut s);
    for (worker, job, _, indices) in &d.sent {
        s.results(*worker, *job, ok(indices));
    }
    // 100 ns per item: 2500 items make the least chunk worth a round trip.
    s.measured(1, 1, 100);
    s.job_ended(1);
    drain(&mut s);
    s.job_submitted(2, TASK, None, 1);
    s.items_added(2, items(0..1000));
    let sizes: Vec<usize> = drain(&mut s).sent.iter().map(|c| c.3.len()).collect();
    assert_eq!(
        sizes[0],
        chunk_size(Some(Duration::from_nanos(100)), 1000, 2)
    );
    assert_ne!(sizes[0], chunk_size(None, 1000, 2), "{sizes:?}");
    // Another task still starts blind.
    let other = Task::Process { key: "other" };
    s.job_submitted(3, other, None, 1);
    s.job_ended(2);
    drain(&mut s);
    s.items_added(3, items(0..1000));
    let sizes: Vec<usize> = drain(&mut s).sent.iter().map(|c| c.3.len()).collect();
    assert_eq!(sizes[0], chunk_size(None, 1000, 2), "{sizes:?}");
}

#[test]
fn items_go_out_in_pipelined_chunks_and_results_are_delivered_in_order() {
    let mut s = ready(2, None, 1);
    s.items_added(1, items(0..8));
    let d = drain(&mut s);
    // Two chunks per worker, alternating workers, fair shares of what is queued.
    assert_eq!(d.sent.len(), 4);
    let workers: Vec<WorkerId> = d.sent.iter().map(|c| c.0).collect();
    assert_eq!(workers, [0, 1, 0, 1]);
    let mut sent: Vec<u64> = d.sent.iter().flat_map(|c| c.3.clone()).collect();
    assert_eq!(sent, (0..sent.len() as u64).collect::<Vec<_>>());
    let first = d.sent[0].clone();
    s.results(first.0, 1, ok(&first.3));
    let d = drain(&mut s);
    let indices: Vec<u64> = d.delivered.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(indices, first.3);
    // The freed pipeline slot takes more of the queue.
    sent.extend(d.sent.iter().flat_map(|c| c.3.clone()));
    assert!(sent.len() > 6 || d.sent.len() == 1, "{sent:?}");
}

#[test]
fn a_result_out_of_order_kills_and_replaces_the_worker() {
    let mut s = ready(1, None, 1);
    s.items_added(1, items(0..4));
    let sent = drain(&mut s).sent;
    let last = *sent[0].3.last().unwrap();
    s.results(0, 1, ok(&[last + 1]));
    let d = drain(&mut s);
    assert_eq!(d.killed, [0]);
    assert_eq!(d.spawned, [1]);
    assert!(
        d.delivered.is_empty(),
        "nothing fails: the items are requeued"
    );
}

#[test]
fn a_crash_after_a_running_report_fails_exactly_that_item_and_requeues_the_rest() {
    let now = Instant::now();
    let mut s = ready(2, None, 1);
    s.items_added(1, items(0..8));
    let sent = drain(&mut s).sent;
    let (worker, _, _, chunk) = sent.iter().find(|c| c.0 == 0).unwrap().clone();
    assert!(chunk.len() >= 2);
    s.results(worker, 1, ok(&chunk[..1]));
    s.running(worker, 1, chunk[1], now);
    drain(&mut s);
    s.worker_ended(worker, "killed by signal 9 (SIGKILL)".into());
    let d = drain(&mut s);
    assert_eq!(
        d.delivered,
        [(
            1,
            chunk[1],
            Err(ItemError::Crashed("killed by signal 9 (SIGKILL)".into()))
        )]
    );
    assert_eq!(d.spawned.len(), 1);
    // The replacement takes the rest once ready; nothing runs twice.
    s.worker_ready(d.spawned[0]);
    let resent: Vec<u64> = drain(&mut s)
        .sent
        .iter()
        .flat_map(|c| c.3.clone())
        .collect();
    assert!(chunk[2..].iter().all(|i| resent.contains(i)) || chunk.len() == 2);
    assert!(!resent.contains(&chunk[1]) && !resent.contains(&chunk[0]));
}

#[test]
fn a_crash_without_a_running_report_requeues_the_unreported_items_as_isolated_suspects() {
    let now = Instant::now();
    let mut s = ready(1, None, 1);
    s.items_added(1, items(0..6));
    let sent = drain(&mut s).sent;
    let unreported: Vec<u64> = sent.iter().flat_map(|c| c.3.clone()).collect();
    s.worker_ended(0, "killed by signal 6 (SIGABRT)".into());
    let d = drain(&mut s);
    assert!(d.delivered.is_empty(), "nothing can be pinned yet");
    s.worker_ready(d.spawned[0]);
    let d = drain(&mut s);
    assert!(d.sent.iter().all(|(_, _, isolated, _)| *isolated));
    // In isolated chunks every start is reported: the next crash is pinned exactly.
    let first = d.sent[0].3[0];
    assert_eq!(first, unreported[0]);
    s.running(1, 1, first, now);
    s.worker_ended(1, "killed by signal 6 (SIGABRT)".into());
    let d = drain(&mut s);
    assert_eq!(
        d.delivered,
        [(
            1,
            first,
            Err(ItemError::Crashed("killed by signal 6 (SIGABRT)".into()))
        )]
    );
}

#[test]
fn a_crash_is_pinned_on_the_item_the_page_names_and_the_rest_run_again_unsuspected() {
    let mut s = ready(1, None, 1);
    s.items_added(1, items(0..6));
    let sent = drain(&mut s).sent;
    let unreported: Vec<u64> = sent.iter().flat_map(|c| c.3.clone()).collect();
    assert!(unreported.len() >= 3, "{unreported:?}");
    // Item 0's result came; ordinal 2 (the third item) was in hand: the second finished,
    // its result lost with the worker.
    s.results(0, 1, ok(&unreported[..1]));
    drain(&mut s);
    s.in_hand(0, Some(2));
    s.worker_ended(0, "killed by signal 6 (SIGABRT)".into());
    let d = drain(&mut s);
    let abort = ItemError::Crashed("killed by signal 6 (SIGABRT)".into());
    assert_eq!(d.delivered, [(1, unreported[2], Err(abort))]);
    s.worker_ready(d.spawned[0]);
    let d = drain(&mut s);
    assert!(d.sent.iter().all(|(_, _, isolated, _)| !*isolated));
    let resent: Vec<u64> = d.sent.iter().flat_map(|c| c.3.clone()).collect();
    assert_eq!(resent[0], unreported[1]);
    assert!(!resent.contains(&unreported[0]) && !resent.contains(&unreported[2]));
}

#[test]
fn a_page_that_names_no_unreported_item_pins_nothing_and_makes_no_suspects() {
    for in_hand in [None, Some(0), Some(1_000)] {
        let mut s = ready(1, None, 1);
        s.items_added(1, items(0..6));
        let sent = drain(&mut s).sent;
        s.results(0, 1, ok(&sent[0].3[..1]));
        drain(&mut s);
        s.in_hand(0, in_hand);
        s.worker_ended(0, "killed by signal 9 (SIGKILL)".into());
        let d = drain(&mut s);
        assert!(d.delivered.is_empty(), "{in_hand:?}: {:?}", d.delivered);
        s.worker_ready(d.spawned[0]);
        let d = drain(&mut s);
        assert!(
            d.sent.iter().all(|(_, _, isolated, _)| !*isolated),
            "{in_hand:?}"
        );
    }
}

#[test]
fn a_crash_is_retried_while_the_job_has_lives() {
    let now = Instant::now();
    let mut s = ready(1, None, 2);
    s.items_added(1, items(0..1));
    drain(&mut s);
    s.running(0, 1, 0, now);
    s.worker_ended(0, "killed by signal 9 (SIGKILL)".into());
    let d = drain(&mut s);
    assert!(d.delivered.is_empty());
    s.worker_ready(1);
    assert_eq!(drain(&mut s).sent[0].3, [0]);
    s.running(1, 1, 0, now);
    s.worker_ended(1, "killed by signal 9 (SIGKILL)".into());
    let d = drain(&mut s);
    assert!(matches!(
        d.delivered[..],
        [(1, 0, Err(ItemError::Crashed(_)))]
    ));
}

#[test]
fn lives_a_worker_reports_spent_count_toward_a_crash_and_travel_with_the_retry() {
    let now = Instant::now();
    let mut s = ready(1, None, 3);
    s.items_added(1, items(0..1));
    drain(&mut s);
    // Its engine spent one life on an `Err`, then its worker crashed: one life is left.
    s.running_spent(0, (1, 0), now, 1);
    let later = now + Duration::from_millis(5);
    s.running(0, 1, 0, later);
    s.worker_ended(0, "killed by signal 6 (SIGABRT)".into());
    assert!(drain(&mut s).delivered.is_empty());
    s.worker_ready(1);
    let sent = loop {
        match s.poll_action() {
            Some(Action::Send {
                worker,
                job,
                first,
                count,
                ..
            }) => break s.chunk_items(worker, job, first, count),
            Some(_) => continue,
            None => panic!("the item was not sent again"),
        }
    };
    let sent: Vec<ItemView<'_>> = sent.unwrap().iter().collect();
    assert_eq!(sent[0].spent, 2);
    s.running(1, 1, 0, now);
    s.worker_ended(1, "killed by signal 6 (SIGABRT)".into());
    let d = drain(&mut s);
    assert!(matches!(
        d.delivered[..],
        [(1, 0, Err(ItemError::Crashed(_)))]
    ));
}

#[test]
fn a_second_running_report_of_the_same_item_keeps_its_first_start() {
    let now = Instant::now();
    let limit = Duration::from_millis(100);
    let mut s = ready(1, Some(limit), 2);
    s.items_added(1, items(0..1));
    drain(&mut s);
    s.running(0, 1, 0, now);
    s.running_spent(0, (1, 0), now + limit / 2, 1);
    assert_eq!(s.next_deadline(), Some(now + limit));
}

#[test]
fn a_late_item_kills_its_worker_fails_with_a_timeout_and_the_rest_go_on() {
    let now = Instant::now();
    let limit = Duration::from_millis(100);
    let mut s = ready(2, Some(limit), 1);
    s.items_added(1, items(0..2));
    let sent = drain(&mut s).sent;
    assert_eq!(sent.len(), 2, "one item per worker");
    s.running(sent[0].0, 1, sent[0].3[0], now);
    s.running(sent[1].0, 1, sent[1].3[0], now + limit / 2);
    assert_eq!(s.next_deadline(), Some(now + limit));
    s.tick(now + limit / 2);
    assert!(drain(&mut s).killed.is_empty());
    s.tick(now + limit);
    let d = drain(&mut s);
    assert_eq!(d.killed, [sent[0].0]);
    assert_eq!(d.spawned.len(), 1);
    assert_eq!(
        d.delivered,
        [(1, sent[0].3[0], Err(ItemError::TimedOut(limit)))]
    );
    // The killed worker's end, arriving later, changes nothing.
    s.worker_ended(sent[0].0, "killed by signal 9 (SIGKILL)".into());
    assert!(drain(&mut s).delivered.is_empty());
    s.results(sent[1].0, 1, ok(&sent[1].3));
    assert_eq!(drain(&mut s).delivered.len(), 1);
}

#[test]
fn results_of_an_ended_job_are_dropped_and_other_jobs_go_on() {
    let mut s = ready(1, None, 1);
    s.job_submitted(2, TASK, None, 1);
    s.items_added(1, items(0..2));
    s.items_added(2, items(0..2));
    s.job_ended(1);
    let mut delivered = Vec::new();
    for _ in 0..10 {
        let d = drain(&mut s);
        delivered.extend(d.delivered);
        for id in d.spawned {
            s.worker_ready(id);
        }
        for (worker, job, _, indices) in d.sent {
            s.results(worker, job, ok(&indices));
        }
    }
    assert!(
        delivered.iter().all(|(job, _, _)| *job == 2),
        "{delivered:?}"
    );
    assert_eq!(delivered.len(), 2);
}

#[test]
fn when_no_worker_can_start_queued_items_fail_instead_of_waiting() {
    let mut s = Scheduler::new(2, 1 << 20);
    drain(&mut s);
    s.job_submitted(1, TASK, None, 1);
    s.items_added(1, items(0..3));
    s.spawn_failed(0, "no such file".into());
    assert!(
        drain(&mut s).delivered.is_empty(),
        "worker 1 may still start"
    );
    s.spawn_failed(1, "no such file".into());
    let d = drain(&mut s);
    assert_eq!(d.delivered.len(), 3);
    assert!(
        d.delivered
            .iter()
            .all(|(_, _, r)| *r == Err(ItemError::NoWorker("no such file".into())))
    );
    // New work tries again.
    s.items_added(1, items(3..4));
    assert_eq!(drain(&mut s).spawned.len(), 2);
}

#[test]
fn terminate_fails_everything_and_kills_every_worker() {
    let mut s = ready(2, None, 1);
    s.items_added(1, items(0..100));
    drain(&mut s);
    s.terminate();
    let d = drain(&mut s);
    assert_eq!(d.killed.len(), 2);
    assert!(d.spawned.is_empty());
    assert_eq!(d.delivered.len(), 100);
    assert!(
        d.delivered
            .iter()
            .all(|(_, _, r)| *r == Err(ItemError::Terminated))
    );
    s.items_added(1, items(100..101));
    assert_eq!(drain(&mut s).delivered.len(), 1);
}

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn a_storm_of_worker_deaths_still_accounts_for_every_item_exactly_once() {
    for seed in 0..50 {
        let now = Instant::now();
        let mut rng = Lcg(seed);
        let mut s = ready(3, None, 1);
        let total = 500;
        // Items come in small batches, so queues run dry and releases happen all along.
        let mut added = 0;
        let mut answered = 0;
        s.measured(1, 1, 1_000_000);
        let mut outcomes: BTreeMap<u64, bool> = BTreeMap::new();
        // What each live worker was sent and has not reported, in order, and how many items
        // it was ever sent (the ordinal after the last pending one).
        let mut pending: BTreeMap<WorkerId, VecDeque<u64>> = BTreeMap::new();
        let mut sent_to: BTreeMap<WorkerId, u64> = BTreeMap::new();
        let mut releasing: BTreeSet<WorkerId> = BTreeSet::new();
        let mut steps = 0;
        while (outcomes.len() as u64) < total || added < total {
            steps += 1;
            assert!(steps < 100_000, "seed {seed}: no progress");
            if added < total && rng.next(8) == 0 {
                let more = (rng.next(20) + 1).min(total - added);
                s.items_added(1, items(added..added + more));
                added += more;
            }
            let d = drain(&mut s);
            for (job, index, result) in d.delivered {
                assert_eq!(job, 1);
                assert!(
                    outcomes.insert(index, result.is_ok()).is_none(),
                    "seed {seed}: {index} twice"
                );
            }
            for id in d.spawned {
                s.worker_ready(id);
            }
            for (worker, _, _, indices) in d.sent {
                assert!(
                    !releasing.contains(&worker),
                    "seed {seed}: a chunk during a release"
                );
                *sent_to.entry(worker).or_default() += indices.len() as u64;
                pending.entry(worker).or_default().extend(indices);
            }
            releasing.extend(d.released);
            let live: Vec<WorkerId> = s.worker_ids();
            pending.retain(|w, _| live.contains(w));
            releasing.retain(|w| live.contains(w));
            // A worker asked to release answers at a random moment, having started a random
            // number of its items.
            if let Some(&worker) = releasing.iter().next()
                && rng.next(3) == 0
            {
                releasing.remove(&worker);
                let queue = pending.entry(worker).or_default();
                let started = rng.next(queue.len() as u64 + 1) as usize;
                let next = sent_to[&worker] - (queue.len() - started) as u64;
                queue.truncate(started);
                sent_to.insert(worker, next);
                s.released(worker, next);
                answered += 1;
                continue;
            }
            let pick = rng.next(3) as usize % pending.len().max(1);
            let Some((&worker, queue)) = pending.iter_mut().nth(pick) else {
                continue;
            };
            match rng.next(10) {
                0 => {
                    if let Some(&front) = queue.front() {
                        s.running(worker, 1, front, now);
                    }
                    s.worker_ended(worker, "killed by signal 9 (SIGKILL)".into());
                }
                1 => s.worker_ended(worker, "killed by signal 9 (SIGKILL)".into()),
                _ => {
                    let n = (rng.next(4) + 1).min(queue.len() as u64) as usize;
                    let done: Vec<u64> = queue.drain(..n).collect();
                    s.results(worker, 1, ok(&done));
                }
            }
        }
        assert!(s.queued().is_empty());
        assert_eq!(outcomes.len() as u64, total);
        assert!(answered > 0, "seed {seed}: no release was tried");
        assert_eq!(
            s.worker_ids().len(),
            3,
            "seed {seed}: the pool keeps its workers"
        );
    }
}

#[test]
fn ending_a_job_with_items_in_flight_replaces_its_workers_and_requeues_other_jobs_items() {
    let now = Instant::now();
    let mut s = ready(1, None, 1);
    s.job_submitted(2, TASK, None, 1);
    s.items_added(1, items(0..1));
    s.items_added(2, items(0..1));
    let sent = drain(&mut s).sent;
    assert_eq!(sent.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2]);
    s.running(0, 1, 0, now);
    s.job_ended(1);
    let d = drain(&mut s);
    assert_eq!((d.killed, d.spawned), (vec![0], vec![1]));
    assert!(d.delivered.is_empty());
    s.worker_ready(1);
    let d = drain(&mut s);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(
        (d.sent[0].1, d.sent[0].2, d.sent[0].3.clone()),
        (2, false, vec![0])
    );
}

#[test]
fn a_worker_silent_about_the_item_it_was_handed_is_killed_and_its_items_go_elsewhere() {
    let now = Instant::now();
    let limit = Duration::from_millis(100);
    let mut s = ready(2, Some(limit), 1);
    s.set_now(now);
    s.items_added(1, items(0..2));
    let sent = drain(&mut s).sent;
    assert_eq!(sent.len(), 2, "one item per worker");
    // Worker 1 reports as a live worker does; worker 0 never says a word (SIGSTOPped).
    s.running(sent[1].0, 1, sent[1].3[0], now);
    s.results(sent[1].0, 1, ok(&sent[1].3));
    drain(&mut s);
    let silent = now + limit + HANDED_GRACE;
    assert_eq!(s.next_deadline(), Some(silent));
    s.tick(silent - Duration::from_millis(1));
    assert!(drain(&mut s).killed.is_empty(), "killed before its time");
    s.tick(silent);
    let d = drain(&mut s);
    assert_eq!(d.killed, [sent[0].0], "the silent worker was not killed");
    assert!(
        d.delivered.is_empty(),
        "an item that never started does not fail"
    );
    assert!(
        d.sent
            .iter()
            .any(|(_, _, _, indices)| indices.contains(&sent[0].3[0])),
        "the silent worker's item was not sent again: {:?}",
        d.sent
    );
}

/// Worker 0 holds `held` items in its pipeline and has not started them; worker 1 ran all
/// it had. The cost is measured as `cost` per item.
fn one_worker_dry(cost: Duration) -> (Scheduler, Vec<u64>, Vec<u64>) {
    let mut s = ready(2, None, 1);
    s.items_added(1, items(0..4));
    let d = drain(&mut s);
    let of = |w: WorkerId| -> Vec<u64> {
        d.sent
            .iter()
            .filter(|c| c.0 == w)
            .flat_map(|c| c.3.clone())
            .collect()
    };
    let (held, dry) = (of(0), of(1));
    assert_eq!((held.len(), dry.len()), (2, 2), "{:?}", d.sent);
    s.measured(1, 1, u64::try_from(cost.as_nanos()).unwrap());
    s.results(1, 1, ok(&dry));
    (s, held, dry)
}

#[test]
fn an_idle_worker_while_another_holds_unstarted_items_asks_for_them_back() {
    let (mut s, held, _) = one_worker_dry(Duration::from_millis(5));
    let d = drain(&mut s);
    assert_eq!(d.released, [0], "no release asked: {d:?}");
    // No chunk goes to a worker whose release is not answered.
    s.items_added(1, items(0..0));
    assert!(drain(&mut s).sent.is_empty());
    // Worker 0 runs its first item and gives back the rest; they go to the idle worker and
    // to worker 0's freed pipeline, each exactly once.
    s.released(0, 1);
    let d = drain(&mut s);
    let mut dealt: Vec<u64> = d.sent.iter().flat_map(|c| c.3.clone()).collect();
    dealt.sort_unstable();
    assert_eq!(dealt, held[1..], "{d:?}");
    assert!(
        d.sent.iter().any(|c| c.0 == 1),
        "the idle worker got nothing"
    );
    // The item worker 0 kept still reports normally, and the dealt ones after it.
    s.results(0, 1, ok(&held[..1]));
    let d = drain(&mut s);
    assert_eq!(d.delivered.len(), 1);
    assert!(d.killed.is_empty());
}

#[test]
fn a_release_answer_that_disowns_a_reported_item_or_comes_unasked_kills_the_worker() {
    let (mut s, held, _) = one_worker_dry(Duration::from_millis(5));
    assert_eq!(drain(&mut s).released, [0]);
    s.results(0, 1, ok(&held[..1]));
    drain(&mut s);
    s.released(0, 0);
    let d = drain(&mut s);
    assert_eq!(d.killed, [0], "{d:?}");
    // A new worker that answers a release nobody asked for.
    s.worker_ready(d.spawned[0]);
    drain(&mut s);
    s.released(d.spawned[0], 0);
    assert_eq!(drain(&mut s).killed, [d.spawned[0]]);
}

#[test]
fn items_cheaper_than_a_round_trip_are_not_asked_back() {
    let (mut s, held, _) = one_worker_dry(Duration::from_nanos(100));
    let d = drain(&mut s);
    assert!(d.released.is_empty(), "{d:?}");
    // A dead worker with a release unanswered loses nothing: its items are requeued.
    let (mut s, _, _) = one_worker_dry(Duration::from_millis(5));
    assert_eq!(drain(&mut s).released, [0]);
    s.worker_ended(0, "killed by signal 9 (SIGKILL)".into());
    let d = drain(&mut s);
    let mut dealt: Vec<u64> = d.sent.iter().flat_map(|c| c.3.clone()).collect();
    dealt.sort_unstable();
    assert_eq!(dealt, held, "{d:?}");
}

#[test]
fn a_worker_is_asked_to_say_which_item_runs_only_when_a_timeout_counts_from_it() {
    let reporting = |timeout| {
        let mut s = ready(1, timeout, 1);
        s.items_added(1, items(0..4));
        let mut sent = Vec::new();
        while let Some(action) = s.poll_action() {
            if let Action::Send { reporting, .. } = action {
                sent.push(reporting);
            }
        }
        sent
    };
    assert_eq!(reporting(None), [Reporting::Results, Reporting::Results]);
    let timed = reporting(Some(Duration::from_secs(1)));
    assert_eq!(timed, [Reporting::Running, Reporting::Running]);
}
