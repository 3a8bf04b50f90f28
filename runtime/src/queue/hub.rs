//! The buffer behind a mutex and two condition variables: what every put and read in the
//! queue's creating process goes through (no system call unless someone waits), and what the
//! broker's connection threads use for readers in other processes.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::queue::buffer::{Buffer, Entry, Grant, ReaderId};

/// How often a wait for a peer checks whether the peer is still there.
const PEER_CHECK: Duration = Duration::from_millis(100);

/// What a put came to.
#[derive(Debug)]
pub(crate) enum Put<E> {
    Accepted,
    /// The buffer stayed full until the deadline; here is the message.
    Full(E),
    /// The queue was closed (its creating process dropped it).
    Closed(E),
}

/// What a wait for an entry came to.
#[derive(Debug)]
pub(crate) enum Taken<T> {
    Ready(T),
    /// Nothing arrived before the deadline (or the peer went away).
    Empty,
    Closed,
}

struct State<E> {
    buffer: Buffer<E>,
    closed: bool,
    readers_waiting: usize,
    putters_waiting: usize,
}

/// The shared buffer.
pub(crate) struct Hub<E> {
    state: Mutex<State<E>>,
    messages_ready: Condvar,
    room_ready: Condvar,
}

impl<E> Hub<E> {
    /// An empty queue of `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buffer: Buffer::new(capacity),
                closed: false,
                readers_waiting: 0,
                putters_waiting: 0,
            }),
            messages_ready: Condvar::new(),
            room_ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `message`, waiting for room until `deadline` (`None`: as long as it takes)
    /// while `present()` holds (a remote putter that hung up is not waited for).
    pub(crate) fn put(
        &self,
        message: E,
        deadline: Option<Instant>,
        present: impl Fn() -> bool,
    ) -> Put<E> {
        let mut state = self.lock();
        let mut message = message;
        loop {
            if state.closed {
                return Put::Closed(message);
            }
            match state.buffer.try_push(message) {
                Ok(()) => {
                    if state.readers_waiting > 0 {
                        self.messages_ready.notify_one();
                    }
                    return Put::Accepted;
                }
                Err(back) => message = back,
            }
            let Some(wait) = wait_slice(deadline) else {
                return Put::Full(message);
            };
            if !present() {
                return Put::Full(message);
            }
            state.putters_waiting += 1;
            state = self.wait(&self.room_ready, state, wait);
            state.putters_waiting -= 1;
        }
    }

    /// Appends an end.
    pub(crate) fn push_end(&self) {
        let mut state = self.lock();
        state.buffer.push_end();
        self.messages_ready.notify_all();
    }

    /// Takes the first entry without a lease, waiting until `deadline`.
    pub(crate) fn take_one(&self, deadline: Option<Instant>) -> Taken<Entry<E>> {
        self.take_with(deadline, || true, |buffer| buffer.take_one())
    }

    /// Leases up to `max` entries to `reader` and hands them to `deliver` under the lock,
    /// waiting until `deadline` while `present()` holds.
    pub(crate) fn take_leased<R>(
        &self,
        reader: ReaderId,
        max: usize,
        budget: (usize, fn(&E) -> usize),
        deadline: Option<Instant>,
        present: impl Fn() -> bool,
        deliver: impl FnOnce(&Buffer<E>, Grant) -> R,
    ) -> Taken<R> {
        let mut deliver = Some(deliver);
        self.take_with(deadline, present, |buffer| {
            let grant = buffer.take_leased(reader, max, budget.0, budget.1)?;
            deliver.take().map(|deliver| deliver(buffer, grant))
        })
    }

    fn take_with<R>(
        &self,
        deadline: Option<Instant>,
        present: impl Fn() -> bool,
        mut take: impl FnMut(&mut Buffer<E>) -> Option<R>,
    ) -> Taken<R> {
        let mut state = self.lock();
        loop {
            let had_room = state.buffer.has_room();
            if let Some(taken) = take(&mut state.buffer) {
                if !had_room && state.putters_waiting > 0 {
                    self.room_ready.notify_all();
                }
                return Taken::Ready(taken);
            }
            if state.closed {
                return Taken::Closed;
            }
            let Some(wait) = wait_slice(deadline) else {
                return Taken::Empty;
            };
            if !present() {
                return Taken::Empty;
            }
            state.readers_waiting += 1;
            state = self.wait(&self.messages_ready, state, wait);
            state.readers_waiting -= 1;
        }
    }

    /// Runs `change` on the buffer (acks, releases, readers) and wakes whoever may now go on.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut Buffer<E>) -> R) -> R {
        let mut state = self.lock();
        let result = change(&mut state.buffer);
        if !state.buffer.is_empty() && state.readers_waiting > 0 {
            self.messages_ready.notify_all();
        }
        if state.buffer.has_room() && state.putters_waiting > 0 {
            self.room_ready.notify_all();
        }
        result
    }

    /// Messages waiting (not leased).
    pub(crate) fn len(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Closes the queue: every waiting and later call ends with `Closed`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.messages_ready.notify_all();
        self.room_ready.notify_all();
    }

    fn wait<'a>(
        &self,
        condition: &Condvar,
        state: MutexGuard<'a, State<E>>,
        wait: Duration,
    ) -> MutexGuard<'a, State<E>> {
        condition
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

/// How long to wait next: at most [`PEER_CHECK`], never past `deadline`; `None` once it passed.
fn wait_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(PEER_CHECK),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(PEER_CHECK))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const BOUND: Duration = Duration::from_secs(10);

    fn wait_finished<T>(thread: &std::thread::JoinHandle<T>) {
        let deadline = Instant::now() + BOUND;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "a thread did not end in time");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_blocked_put_goes_on_when_a_reader_makes_room() {
        let hub = Arc::new(Hub::new(1));
        assert!(matches!(hub.put(1u32, None, || true), Put::Accepted));
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert!(matches!(hub.put(2, soon, || true), Put::Full(2)));
        let putter = std::thread::spawn({
            let hub = Arc::clone(&hub);
            move || {
                matches!(
                    hub.put(3, Some(Instant::now() + BOUND), || true),
                    Put::Accepted
                )
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(matches!(hub.take_one(None), Taken::Ready(Entry::Msg(1))));
        wait_finished(&putter);
        assert!(putter.join().unwrap());
        assert!(matches!(hub.take_one(None), Taken::Ready(Entry::Msg(3))));
    }

    #[test]
    fn closing_wakes_a_waiting_reader_and_refuses_puts() {
        let hub = Arc::new(Hub::<u32>::new(4));
        let reader = std::thread::spawn({
            let hub = Arc::clone(&hub);
            move || matches!(hub.take_one(Some(Instant::now() + BOUND)), Taken::Closed)
        });
        std::thread::sleep(Duration::from_millis(50));
        hub.close();
        wait_finished(&reader);
        assert!(reader.join().unwrap());
        assert!(matches!(hub.put(1, None, || true), Put::Closed(1)));
    }

    #[test]
    fn a_reader_whose_peer_left_stops_waiting() {
        let hub = Hub::<u32>::new(4);
        let started = Instant::now();
        assert!(matches!(
            hub.take_leased(0, 1, (1, |_| 1), None, || false, |_, grant| grant),
            Taken::Empty
        ));
        assert!(started.elapsed() < BOUND);
    }
}
