//! Reading a queue as an iterator: until its end, in `order`, or with the errors.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::queue::sorted::Reorder;
use crate::queue::{Msg, Readers, deadline};

/// What one read of a queue found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Next<T> {
    /// A message.
    Msg(Msg<T>),
    /// An end: the reader that reads it stops (one end stops one reader).
    End,
    /// Nothing arrived before the timeout.
    Empty,
}

/// What the iterators read from: [`Queue`](crate::Queue) and
/// [`LocalQueue`](crate::LocalQueue). Not implemented outside this crate.
pub trait QueueSource: sealed::Sealed {
    /// The type of the messages' data.
    type Data;

    /// Reads the next message or end, waiting up to `wait` (`None`: until one arrives);
    /// `prefetch` lets a reader in another process fetch a batch at once.
    #[doc(hidden)]
    fn next_entry(&self, prefetch: bool, wait: Option<Duration>)
    -> Result<Next<Self::Data>, Error>;

    /// An iterator stopped before the end: acknowledge what it read and give back what it
    /// prefetched.
    #[doc(hidden)]
    fn settle(&self);

    /// Appends one end.
    #[doc(hidden)]
    fn push_end(&self) -> Result<(), Error>;
}

pub(crate) mod sealed {
    /// Seals [`QueueSource`](super::QueueSource).
    pub trait Sealed {}
}

/// Reads until the end, without a deadline; an error ends the iteration after it is given.
fn read_blocking<Q: QueueSource + ?Sized>(queue: &Q) -> Option<Result<Msg<Q::Data>, Error>> {
    loop {
        match queue.next_entry(true, None) {
            Ok(Next::Msg(message)) => return Some(Ok(message)),
            Ok(Next::End) => return None,
            Ok(Next::Empty) => continue,
            Err(error) => return Some(Err(error)),
        }
    }
}

/// The messages of a queue until its end ([`Queue::iter`](crate::Queue::iter)).
///
/// # Panics
///
/// `next` panics when the queue cannot be read (its creating process is gone, or a message
/// does not decode); use [`try_iter`](crate::Queue::try_iter) to get the error instead.
pub struct Iter<'a, Q: QueueSource + ?Sized> {
    queue: &'a Q,
    done: bool,
}

impl<'a, Q: QueueSource + ?Sized> Iter<'a, Q> {
    pub(crate) fn new(queue: &'a Q) -> Self {
        Self { queue, done: false }
    }
}

impl<Q: QueueSource + ?Sized> Iterator for Iter<'_, Q> {
    type Item = Msg<Q::Data>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match read_blocking(self.queue) {
            Some(Ok(message)) => Some(message),
            Some(Err(error)) => {
                self.done = true;
                panic!("reading the queue failed: {error}")
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl<Q: QueueSource + ?Sized> Drop for Iter<'_, Q> {
    fn drop(&mut self) {
        if !self.done {
            self.queue.settle();
        }
    }
}

/// The messages of a queue until its end, each a `Result`; the iteration stops after an
/// error ([`Queue::try_iter`](crate::Queue::try_iter)).
pub struct TryIter<'a, Q: QueueSource + ?Sized> {
    queue: &'a Q,
    done: bool,
}

impl<'a, Q: QueueSource + ?Sized> TryIter<'a, Q> {
    pub(crate) fn new(queue: &'a Q) -> Self {
        Self { queue, done: false }
    }
}

impl<Q: QueueSource + ?Sized> Iterator for TryIter<'_, Q> {
    type Item = Result<Msg<Q::Data>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let read = read_blocking(self.queue);
        self.done = !matches!(read, Some(Ok(_)));
        read
    }
}

impl<Q: QueueSource + ?Sized> Drop for TryIter<'_, Q> {
    fn drop(&mut self) {
        if !self.done {
            self.queue.settle();
        }
    }
}

/// The messages of a queue in `order` until its end ([`Queue::sorted`](crate::Queue::sorted)).
///
/// Messages that arrive ahead of their turn wait in memory until the ones before them came;
/// at the end, those still waiting come out in order, across the gaps. A message without an
/// `order`, or with one already passed, comes out as it arrives.
///
/// # Panics
///
/// Like [`Iter`], when the queue cannot be read.
pub struct Sorted<'a, Q: QueueSource + ?Sized> {
    queue: &'a Q,
    reorder: Reorder<Msg<Q::Data>>,
    ended: bool,
}

impl<'a, Q: QueueSource + ?Sized> Sorted<'a, Q> {
    pub(crate) fn new(queue: &'a Q, start: u64) -> Self {
        Self {
            queue,
            reorder: Reorder::new(start),
            ended: false,
        }
    }
}

impl<Q: QueueSource + ?Sized> Iterator for Sorted<'_, Q> {
    type Item = Msg<Q::Data>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.ended {
                return self.reorder.pop_remaining();
            }
            if let Some(ready) = self.reorder.pop_ready() {
                return Some(ready);
            }
            match read_blocking(self.queue) {
                Some(Ok(message)) => {
                    if let Some(out) = self.reorder.push(message.order, message) {
                        return Some(out);
                    }
                }
                Some(Err(error)) => {
                    self.ended = true;
                    panic!("reading the queue failed: {error}")
                }
                None => self.ended = true,
            }
        }
    }
}

impl<Q: QueueSource + ?Sized> Drop for Sorted<'_, Q> {
    fn drop(&mut self) {
        if !self.ended {
            self.queue.settle();
        }
    }
}

/// The next message, waiting as long as it takes; `None` after an end (`get` of both queues).
pub(crate) fn get<Q: QueueSource + ?Sized>(queue: &Q) -> Result<Option<Msg<Q::Data>>, Error> {
    loop {
        match queue.next_entry(false, None)? {
            Next::Msg(message) => return Ok(Some(message)),
            Next::End => return Ok(None),
            Next::Empty => {}
        }
    }
}

/// Appends one end per reader and waits for them until `timeout` (`stop_timeout` of both
/// queues); `false` when some reader still runs then.
pub(crate) fn stop_timeout<Q: QueueSource + ?Sized, R: Readers + ?Sized>(
    queue: &Q,
    readers: &R,
    timeout: Duration,
) -> Result<bool, Error> {
    for _ in 0..readers.reader_count() {
        queue.push_end()?;
    }
    Ok(readers.wait_ended(deadline(Some(timeout))))
}

/// Ends the queue and reads every message before the end, sorted by `order` when asked
/// (`items` and `items_sorted` of both queues).
pub(crate) fn items<Q: QueueSource + ?Sized>(
    queue: &Q,
    sorted: bool,
) -> Result<Vec<Msg<Q::Data>>, Error> {
    queue.push_end()?;
    let mut messages = drain(queue)?;
    if sorted {
        sort_by_order(&mut messages);
    }
    Ok(messages)
}

/// Reads the rest of a queue after ending it: every message before the end.
fn drain<Q: QueueSource + ?Sized>(queue: &Q) -> Result<Vec<Msg<Q::Data>>, Error> {
    let mut messages = Vec::new();
    while let Some(message) = read_blocking(queue) {
        messages.push(message?);
    }
    Ok(messages)
}

/// Sorts drained messages by `order`, those without one last (in arrival order).
fn sort_by_order<T>(messages: &mut [Msg<T>]) {
    messages.sort_by_key(|message| (message.order.is_none(), message.order));
}

/// Waits for one read until `deadline`.
pub(crate) fn read_until<Q: QueueSource + ?Sized>(
    queue: &Q,
    deadline: Option<Instant>,
) -> Result<Next<Q::Data>, Error> {
    let wait = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
    queue.next_entry(false, wait)
}
