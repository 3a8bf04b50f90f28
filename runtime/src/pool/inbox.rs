//! A worker's queue of chunks, shared by the thread that receives them and the thread that
//! runs their items, and the one place a release is decided.
//!
//! Items are counted in the order they were sent, from 0 (their *ordinals*); the parent
//! counts the same way. The runner asks [`admit`](Inbox::admit) before it starts each item, and
//! a [`release`](Inbox::release) takes back, under the same lock, every item not admitted yet:
//! the rest of the chunk running and every queued chunk. So an item is either started here
//! or given back, never both — the parent may run a released item elsewhere without it ever
//! running twice.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Chunks waiting to run, and where the runner is.
pub(crate) struct Inbox<C> {
    state: Mutex<State<C>>,
    arrived: Condvar,
}

struct State<C> {
    queue: VecDeque<(Range<u64>, C)>,
    /// Ordinals received so far: the first ordinal of the next chunk.
    received: u64,
    /// The ordinal of the next item the runner may start.
    next: u64,
    /// The end of the runner's chunk; lowered by a release.
    end: u64,
    closed: bool,
}

impl<C> Inbox<C> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                received: 0,
                next: 0,
                end: 0,
                closed: false,
            }),
            arrived: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a chunk of `items` items.
    pub(crate) fn push(&self, items: u64, chunk: C) {
        let mut state = self.lock();
        let first = state.received;
        state.received = first.saturating_add(items);
        let range = first..state.received;
        state.queue.push_back((range, chunk));
        drop(state);
        self.arrived.notify_one();
    }

    /// The next chunk and the ordinal of its first item; waits for one. `None` once closed
    /// and empty.
    pub(crate) fn next_chunk(&self) -> Option<(u64, C)> {
        let mut state = self.lock();
        loop {
            if let Some((range, chunk)) = state.queue.pop_front() {
                state.next = range.start;
                state.end = range.end;
                return Some((range.start, chunk));
            }
            if state.closed {
                return None;
            }
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the runner may start the item `ordinal` of its chunk: `false` once a release
    /// took it back (the runner then leaves the chunk).
    pub(crate) fn admit(&self, ordinal: u64) -> bool {
        let mut state = self.lock();
        if ordinal < state.end {
            state.next = ordinal.saturating_add(1);
            true
        } else {
            false
        }
    }

    /// Admits up to `count` items from `ordinal` on at once (see [`admit`](Inbox::admit)):
    /// how many may start; 0 once a release took the rest back.
    pub(crate) fn admit_block(&self, ordinal: u64, count: u64) -> u64 {
        let mut state = self.lock();
        let admitted = state.end.saturating_sub(ordinal).min(count);
        if admitted > 0 {
            state.next = ordinal + admitted;
        }
        admitted
    }

    /// Takes back every item not started: the rest of the running chunk and the queued
    /// chunks. Returns the first ordinal taken back (everything received from it on); the
    /// next chunk counts on from there, as the parent does, so the items in flight always
    /// have consecutive ordinals.
    pub(crate) fn release(&self) -> u64 {
        let mut state = self.lock();
        state.queue.clear();
        state.end = state.end.min(state.next);
        state.received = state.next;
        state.next
    }

    /// No more chunks come: [`next_chunk`](Inbox::next_chunk) ends once the queue is empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_takes_back_the_rest_of_the_running_chunk_and_every_queued_one() {
        let inbox = Inbox::new();
        inbox.push(3, 'a');
        inbox.push(2, 'b');
        assert_eq!(inbox.next_chunk(), Some((0, 'a')));
        assert!(inbox.admit(0));
        assert_eq!(inbox.release(), 1);
        assert!(!inbox.admit(1), "a released item never starts");
        // Chunks after the release count on from the first item taken back.
        inbox.push(1, 'c');
        assert!(!inbox.admit(1), "the cut chunk stays cut");
        assert_eq!(inbox.next_chunk(), Some((1, 'c')));
        assert!(inbox.admit(1));
        assert!(!inbox.admit(2));
    }

    #[test]
    fn a_release_between_chunks_takes_back_the_whole_next_chunk() {
        let inbox = Inbox::new();
        inbox.push(2, 'a');
        inbox.push(2, 'b');
        assert_eq!(inbox.next_chunk(), Some((0, 'a')));
        assert!(inbox.admit(0) && inbox.admit(1));
        assert_eq!(inbox.release(), 2);
        inbox.close();
        assert_eq!(inbox.next_chunk(), None);
        // A chunk popped but not started is taken back whole.
        let inbox = Inbox::new();
        inbox.push(2, 'a');
        assert_eq!(inbox.next_chunk(), Some((0, 'a')));
        assert_eq!(inbox.release(), 0);
        assert!(!inbox.admit(0));
        // A second release with nothing new gives back nothing more; one after a chunk came
        // takes that chunk back whole.
        assert_eq!(inbox.release(), 0);
        inbox.push(3, 'b');
        assert_eq!(inbox.release(), 0);
        inbox.push(1, 'c');
        assert_eq!(inbox.next_chunk(), Some((0, 'c')));
    }
}
