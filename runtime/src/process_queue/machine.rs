//! The queue's bookkeeping, without I/O: which items wait, which one the worker holds, and
//! whether a worker is alive — so the race "the worker found the queue empty" against "a
//! caller appended items" is decided in one place, under one lock.
//!
//! A worker is identified by its *generation*, drawn when the machine asks for it to be
//! spawned. Only the current generation gets items; a worker asking for work when nothing
//! waits is *retired* in the same step (it will exit), so the next append asks for a new
//! worker. Either the append comes first and the worker gets the item, or the retirement
//! comes first and the append spawns: no item is ever left with no worker to run it.

use std::collections::VecDeque;
use std::sync::Arc;

/// One queued item: its id and its encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) bytes: Arc<[u8]>,
    /// How many workers died while running it.
    pub(crate) crashes: u32,
}

/// What [`Machine::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The generation of a worker to spawn now, when none was alive and items wait.
    pub(crate) spawn: Option<u64>,
    /// Items not done after the append (waiting plus the one a worker holds).
    pub(crate) len: usize,
}

/// Why [`Machine::append`] refused: nothing was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    pub(crate) capacity: usize,
    pub(crate) len: usize,
    pub(crate) adding: usize,
}

/// The answer to a worker's request for work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run this item and report it finished.
    Item(Entry),
    /// Exit: the queue is empty (the worker is retired) or the worker is not the current one.
    Retire,
}

/// The queue's state.
#[derive(Debug)]
pub(crate) struct Machine {
    capacity: usize,
    waiting: VecDeque<Entry>,
    /// The item the current worker holds; it stays counted until reported finished.
    running: Option<Entry>,
    /// The generation of the worker that is alive (or being spawned), if any.
    worker: Option<u64>,
    next_generation: u64,
    next_id: u64,
    /// Workers that may die running one item before it is given up.
    attempts: u32,
    /// Items given up, until taken.
    given_up: Vec<Entry>,
}

impl Machine {
    /// An empty queue holding at most `capacity` items not done, giving up an item once
    /// `attempts` workers died running it.
    pub(crate) fn new(capacity: usize, attempts: u32) -> Self {
        Self {
            capacity,
            waiting: VecDeque::new(),
            running: None,
            worker: None,
            next_generation: 1,
            next_id: 0,
            attempts,
            given_up: Vec::new(),
        }
    }

    /// Items not done: waiting, plus the one a worker holds.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len() + usize::from(self.running.is_some())
    }

    /// The generation of the live worker, if any.
    pub(crate) fn worker(&self) -> Option<u64> {
        self.worker
    }

    /// Appends `items` — all of them, or none when they do not fit — and asks for a worker
    /// when none is alive and anything waits (an empty append revives leftover items).
    pub(crate) fn append(&mut self, items: Vec<Arc<[u8]>>) -> Result<Appended, Full> {
        let len = self.len();
        if items.len() > self.capacity.saturating_sub(len) {
            return Err(Full {
                capacity: self.capacity,
                len,
                adding: items.len(),
            });
        }
        for bytes in items {
            let id = self.next_id;
            self.next_id += 1;
            self.waiting.push_back(Entry {
                id,
                bytes,
                crashes: 0,
            });
        }
        let spawn = self.spawn_if_needed();
        Ok(Appended {
            spawn,
            len: self.len(),
        })
    }

    fn spawn_if_needed(&mut self) -> Option<u64> {
        if self.worker.is_some() || self.waiting.is_empty() {
            return None;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.worker = Some(generation);
        Some(generation)
    }

    /// A worker asks for work, having finished `finished` (an item id) since it last asked.
    pub(crate) fn next(&mut self, generation: u64, finished: Option<u64>) -> Next {
        if self.worker != Some(generation) {
            // A stopped or replaced worker: what it held was requeued when it was let go.
            return Next::Retire;
        }
        if let Some(running) = self.running.take() {
            if finished != Some(running.id) {
                // It asks again without finishing what it holds: run that again later.
                self.waiting.push_front(running);
            }
        }
        match self.waiting.pop_front() {
            Some(entry) => {
                self.running = Some(entry.clone());
                Next::Item(entry)
            }
            None => {
                self.worker = None;
                Next::Retire
            }
        }
    }

    /// The worker of `generation` is gone (its connection ended, or its process is dead).
    /// If it was the current one, the item it held goes back to the front of the queue, or
    /// is given up when this was its last attempt. Returns whether it was the current worker.
    pub(crate) fn ended(&mut self, generation: u64) -> bool {
        if self.worker != Some(generation) {
            return false;
        }
        self.worker = None;
        if let Some(mut running) = self.running.take() {
            running.crashes = running.crashes.saturating_add(1);
            if running.crashes >= self.attempts {
                self.given_up.push(running);
            } else {
                self.waiting.push_front(running);
            }
        }
        true
    }

    /// Takes the items given up since the last call, in the order they were given up.
    pub(crate) fn take_given_up(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.given_up)
    }

    /// Lets the current worker go (it is being killed): its item is requeued, and nothing
    /// it asks for is answered with work any more. Returns its generation.
    pub(crate) fn stop(&mut self) -> Option<u64> {
        let generation = self.worker;
        self.release();
        generation
    }

    fn release(&mut self) {
        self.worker = None;
        if let Some(running) = self.running.take() {
            self.waiting.push_front(running);
        }
    }

    /// Drops every waiting item (not the one a live worker holds); returns how many.
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.waiting.len();
        self.waiting.clear();
        dropped
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
