use super::*;

fn items(n: u8) -> Vec<Arc<[u8]>> {
    (0..n).map(|i| Arc::from(vec![i])).collect()
}

fn item_id(next: &Next) -> u64 {
    match next {
        Next::Item(entry) => entry.id,
        Next::Retire => panic!("expected an item, got a retirement"),
    }
}

#[test]
fn the_first_append_spawns_and_later_ones_do_not() {
    let mut machine = Machine::new(10, u32::MAX);
    let first = machine.append(items(2)).unwrap();
    assert_eq!(
        first,
        Appended {
            spawn: Some(1),
            len: 2
        }
    );
    let second = machine.append(items(3)).unwrap();
    assert_eq!(
        second,
        Appended {
            spawn: None,
            len: 5
        }
    );
}

#[test]
fn an_empty_append_on_an_empty_queue_spawns_nothing() {
    let mut machine = Machine::new(10, u32::MAX);
    assert_eq!(
        machine.append(Vec::new()).unwrap(),
        Appended {
            spawn: None,
            len: 0
        }
    );
    assert_eq!(machine.worker(), None);
}

#[test]
fn items_are_handed_in_order_and_removed_only_when_finished() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(2)).unwrap();
    let first = machine.next(1, None);
    assert_eq!(item_id(&first), 0);
    assert_eq!(machine.len(), 2, "the running item still counts");
    assert_eq!(item_id(&machine.next(1, Some(0))), 1);
    assert_eq!(machine.len(), 1);
    assert_eq!(machine.next(1, Some(1)), Next::Retire);
    assert_eq!(machine.len(), 0);
    assert_eq!(machine.worker(), None);
}

#[test]
fn a_worker_that_finds_the_queue_empty_is_retired_and_the_next_append_spawns() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(1)).unwrap();
    machine.next(1, None);
    // The worker finishes and finds nothing: retired in the same step.
    assert_eq!(machine.next(1, Some(0)), Next::Retire);
    // The append that comes after the retirement spawns a new worker.
    assert_eq!(machine.append(items(1)).unwrap().spawn, Some(2));
}

#[test]
fn an_append_before_the_request_goes_to_the_same_worker() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(1)).unwrap();
    machine.next(1, None);
    assert_eq!(machine.append(items(1)).unwrap().spawn, None);
    assert_eq!(item_id(&machine.next(1, Some(0))), 1);
}

#[test]
fn a_crashed_workers_item_goes_back_to_the_front() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(3)).unwrap();
    assert_eq!(item_id(&machine.next(1, None)), 0);
    assert!(machine.ended(1));
    assert_eq!(machine.len(), 3);
    assert_eq!(machine.worker(), None);
    let appended = machine.append(Vec::new()).unwrap();
    assert_eq!(
        appended,
        Appended {
            spawn: Some(2),
            len: 3
        }
    );
    assert_eq!(
        item_id(&machine.next(2, None)),
        0,
        "the crashed item runs first"
    );
}

#[test]
fn an_item_whose_workers_die_attempts_times_is_given_up_and_the_rest_runs() {
    let mut machine = Machine::new(10, 2);
    machine.append(items(2)).unwrap();
    assert_eq!(item_id(&machine.next(1, None)), 0);
    assert!(machine.ended(1));
    assert_eq!(machine.len(), 2, "one death: the item is tried again");
    assert!(machine.take_given_up().is_empty());
    assert_eq!(machine.append(Vec::new()).unwrap().spawn, Some(2));
    assert_eq!(item_id(&machine.next(2, None)), 0);
    assert!(machine.ended(2));
    assert_eq!(machine.len(), 1, "two deaths: the item is given up");
    let given_up = machine.take_given_up();
    assert_eq!(given_up.iter().map(|e| e.id).collect::<Vec<_>>(), [0]);
    assert_eq!(given_up[0].crashes, 2);
    assert!(machine.take_given_up().is_empty(), "taken once");
    assert_eq!(machine.append(Vec::new()).unwrap().spawn, Some(3));
    assert_eq!(item_id(&machine.next(3, None)), 1);
}

#[test]
fn a_stop_does_not_count_against_the_item() {
    let mut machine = Machine::new(10, 1);
    machine.append(items(1)).unwrap();
    assert_eq!(item_id(&machine.next(1, None)), 0);
    assert_eq!(machine.stop(), Some(1));
    assert_eq!(machine.len(), 1);
    assert!(machine.take_given_up().is_empty());
}

#[test]
fn the_end_of_a_retired_or_replaced_worker_changes_nothing() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(1)).unwrap();
    machine.next(1, None);
    machine.next(1, Some(0));
    machine.append(items(1)).unwrap();
    machine.next(2, None);
    assert!(!machine.ended(1));
    assert_eq!(machine.worker(), Some(2));
    assert_eq!(machine.len(), 1);
}

#[test]
fn a_stale_worker_gets_no_work_and_cannot_finish_anything() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(2)).unwrap();
    machine.next(1, None);
    assert_eq!(machine.stop(), Some(1));
    assert_eq!(machine.len(), 2, "the stopped worker's item stays queued");
    assert_eq!(machine.next(1, Some(0)), Next::Retire);
    assert_eq!(machine.len(), 2);
    assert_eq!(machine.append(Vec::new()).unwrap().spawn, Some(2));
    assert_eq!(item_id(&machine.next(2, None)), 0);
}

#[test]
fn stopping_without_a_worker_is_nothing() {
    let mut machine = Machine::new(10, u32::MAX);
    assert_eq!(machine.stop(), None);
}

#[test]
fn a_request_that_does_not_finish_the_held_item_requeues_it() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(2)).unwrap();
    machine.next(1, None);
    assert_eq!(item_id(&machine.next(1, None)), 0);
    assert_eq!(machine.len(), 2);
}

#[test]
fn a_full_queue_takes_nothing_of_an_append() {
    let mut machine = Machine::new(3, u32::MAX);
    machine.append(items(2)).unwrap();
    let full = machine.append(items(2)).unwrap_err();
    assert_eq!(
        full,
        Full {
            capacity: 3,
            len: 2,
            adding: 2
        }
    );
    assert_eq!(machine.len(), 2);
    assert_eq!(machine.append(items(1)).unwrap().len, 3);
}

#[test]
fn the_running_item_counts_against_the_capacity() {
    let mut machine = Machine::new(2, u32::MAX);
    machine.append(items(2)).unwrap();
    machine.next(1, None);
    assert!(machine.append(items(1)).is_err());
    machine.next(1, Some(0));
    assert!(machine.append(items(1)).is_ok());
}

#[test]
fn clear_drops_waiting_items_but_not_the_running_one() {
    let mut machine = Machine::new(10, u32::MAX);
    machine.append(items(3)).unwrap();
    machine.next(1, None);
    assert_eq!(machine.clear(), 2);
    assert_eq!(machine.len(), 1);
    assert_eq!(machine.next(1, Some(0)), Next::Retire);
}

/// A modelled worker process: the generation it was spawned as and the item it holds.
#[derive(Default)]
struct Model {
    alive: Option<u64>,
    holding: Option<u64>,
    finished: std::collections::BTreeSet<u64>,
}

impl Model {
    fn spawned(&mut self, spawn: Option<u64>) {
        if spawn.is_some() {
            self.alive = spawn;
            self.holding = None;
        }
    }

    /// The live process finishes what it holds and asks again; a retired one exits.
    fn request(&mut self, machine: &mut Machine) {
        let Some(generation) = self.alive else {
            return;
        };
        let done = self.holding.take();
        if let Some(id) = done {
            self.finished.insert(id);
        }
        match machine.next(generation, done) {
            Next::Item(entry) => self.holding = Some(entry.id),
            Next::Retire => self.alive = None,
        }
    }

    fn died(&mut self, machine: &mut Machine) {
        if let Some(generation) = self.alive.take() {
            machine.ended(generation);
        }
        self.holding = None;
    }
}

/// A seeded interleaving of appends, requests, crashes and stops: the machine's live worker
/// is always the process that runs, so no item is ever left with nobody to run it, and every
/// item is finished at least once.
#[test]
fn no_item_is_stranded_under_any_interleaving() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut machine = Machine::new(100_000, u32::MAX);
    let mut model = Model::default();
    let mut appended = 0u64;
    for _ in 0..20_000 {
        match random(6) {
            0 => {
                let n = random(3) as u8;
                appended += u64::from(n);
                model.spawned(machine.append(items(n)).unwrap().spawn);
            }
            1..=3 => model.request(&mut machine),
            4 => model.died(&mut machine),
            _ => {
                machine.stop();
                model.alive = None;
                model.holding = None;
            }
        }
        assert_eq!(
            machine.worker(),
            model.alive,
            "the machine's live worker is the one that runs"
        );
    }
    model.spawned(machine.append(Vec::new()).unwrap().spawn);
    for _ in 0..=appended + 1 {
        model.request(&mut machine);
    }
    assert_eq!(machine.len(), 0);
    assert_eq!(machine.worker(), None);
    assert_eq!(model.finished.len() as u64, appended);
    assert_eq!(model.finished.last().copied(), appended.checked_sub(1));
}
