//! The thread-only queue: the same buffer as a cross-process queue's broker, holding typed
//! messages, with no socket and no serialization.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, TrySendError};
use crate::queue::buffer::Entry;
use crate::queue::hub::{Hub, Put, Taken};
use crate::queue::iter::{self, Iter, Next, QueueSource, Sorted, TryIter, sealed};
use crate::queue::{Msg, Readers, deadline};

/// A queue among the threads of one process, from [`Queue::local`](crate::Queue::local)
/// (ezq's `Q("thread")`): the same calls as [`Queue`](crate::Queue), with any `Send` data and
/// no serialization or sockets. Clones share the queue.
///
/// It cannot be sent to another process: putting it in a process's state, a pool item or
/// `run`'s arguments does not compile (see [`CanCrossProcesses`]).
pub struct LocalQueue<T> {
    hub: Arc<Hub<Msg<T>>>,
}

/// Implemented by nothing: a [`LocalQueue`] stays in the process that created it.
///
/// `LocalQueue` implements `Serialize` and `Deserialize` only where this bound holds, which
/// is never, so a process state (or a worker's arguments) holding one is a compile error
/// naming this trait. Use a cross-process [`Queue`](crate::Queue) (`Queue::new()`) instead.
#[diagnostic::on_unimplemented(
    message = "a `Queue::local()` handle cannot be sent to another process",
    label = "a local queue stays among the threads of the process that created it",
    note = "use a cross-process queue, `Queue::new()`, to reach another process"
)]
pub trait CanCrossProcesses {}

impl<T> Serialize for LocalQueue<T>
where
    LocalQueue<T>: CanCrossProcesses,
{
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a local queue cannot be serialized: it stays in its process",
        ))
    }
}

impl<'de, T> Deserialize<'de> for LocalQueue<T>
where
    LocalQueue<T>: CanCrossProcesses,
{
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "a local queue cannot be deserialized: it stays in its process",
        ))
    }
}

impl<T> LocalQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            hub: Arc::new(Hub::new(capacity)),
        }
    }

    /// A local queue that holds at most `capacity` messages before `put` waits.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::new(capacity)
    }

    /// Appends `data`, waiting while the queue is full.
    pub fn put(&self, data: T) -> Result<(), Error> {
        self.put_message(Msg::new(data))
    }

    /// Appends a message with a kind or an order, waiting while the queue is full.
    pub fn put_message(&self, message: Msg<T>) -> Result<(), Error> {
        self.send(message, None).map_err(Error::from)
    }

    /// Appends `data` if there is room now; a full queue gives it back.
    pub fn try_put(&self, data: T) -> Result<(), TrySendError<T>> {
        self.put_timeout(data, Duration::ZERO)
    }

    /// Appends every message of `messages` in order, waiting for room as needed (the same
    /// call as [`Queue::put_many`](crate::Queue::put_many)).
    pub fn put_many(&self, messages: impl IntoIterator<Item = Msg<T>>) -> Result<(), Error> {
        self.put_many_until(messages, None).map_err(Error::from)
    }

    /// Like [`put_many`](LocalQueue::put_many), waiting for room up to `timeout` in all; a
    /// queue that stays full gives back the messages not put, in order (the rest of
    /// `messages` is collected for that), and those before them are in the queue, each once.
    pub fn put_many_timeout(
        &self,
        messages: impl IntoIterator<Item = Msg<T>>,
        timeout: Duration,
    ) -> Result<(), TrySendError<Vec<Msg<T>>>> {
        self.put_many_until(messages, deadline(Some(timeout)))
    }

    fn put_many_until(
        &self,
        messages: impl IntoIterator<Item = Msg<T>>,
        until: Option<Instant>,
    ) -> Result<(), TrySendError<Vec<Msg<T>>>> {
        crate::queue::many::put_each(messages.into_iter(), |message| self.send(message, until))
    }

    /// Appends `data`, waiting for room up to `timeout`; a queue that stays full gives it back.
    pub fn put_timeout(&self, data: T, timeout: Duration) -> Result<(), TrySendError<T>> {
        self.put_message_timeout(Msg::new(data), timeout)
            .map_err(|error| match error {
                TrySendError::Full(message) => TrySendError::Full(message.data),
                TrySendError::Failed(error) => TrySendError::Failed(error),
            })
    }

    /// Appends a message, waiting for room up to `timeout`; a queue that stays full gives it
    /// back.
    pub fn put_message_timeout(
        &self,
        message: Msg<T>,
        timeout: Duration,
    ) -> Result<(), TrySendError<Msg<T>>> {
        self.send(message, deadline(Some(timeout)))
    }

    /// Appends a message, waiting for room until `until` (`None`: as long as it takes).
    fn send(&self, message: Msg<T>, until: Option<Instant>) -> Result<(), TrySendError<Msg<T>>> {
        match self.hub.put(message, until, || true) {
            Put::Accepted => Ok(()),
            Put::Full(message) => Err(TrySendError::Full(message)),
            Put::Closed(_) => Err(TrySendError::Failed(Error::Gone {
                peer: crate::error::Peer::Queue,
            })),
        }
    }

    /// Appends one end: the one reader that reads it stops.
    pub fn put_end(&self) -> Result<(), Error> {
        self.hub.push_end();
        Ok(())
    }

    /// Appends one end per reader and waits until every reader has ended.
    pub fn stop<R: Readers + ?Sized>(&self, readers: &R) -> Result<(), Error> {
        self.stop_timeout(readers, Duration::MAX).map(drop)
    }

    /// Like [`stop`](LocalQueue::stop), waiting at most `timeout`; `Ok(false)` when some
    /// reader still runs then.
    pub fn stop_timeout<R: Readers + ?Sized>(
        &self,
        readers: &R,
        timeout: Duration,
    ) -> Result<bool, Error> {
        iter::stop_timeout(self, readers, timeout)
    }

    /// Nothing to acknowledge: readers of a thread-only queue hold no lease (for the same
    /// calls as [`Queue::ack`](crate::Queue::ack)).
    pub fn ack(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The next message, waiting as long as it takes; `None` when this reader read an end.
    pub fn get(&self) -> Result<Option<Msg<T>>, Error> {
        iter::get(self)
    }

    /// The next message or end, waiting up to `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Next<T>, Error> {
        iter::read_until(self, deadline(Some(timeout)))
    }

    /// The messages until an end. Also `for message in &queue`.
    pub fn iter(&self) -> Iter<'_, Self> {
        Iter::new(self)
    }

    /// The messages until an end, each a `Result`.
    pub fn try_iter(&self) -> TryIter<'_, Self> {
        TryIter::new(self)
    }

    /// The messages until an end, in `order` from 0 (see [`Sorted`]).
    pub fn sorted(&self) -> Sorted<'_, Self> {
        self.sorted_from(0)
    }

    /// The messages until an end, in `order` from `start`.
    pub fn sorted_from(&self, start: u64) -> Sorted<'_, Self> {
        Sorted::new(self, start)
    }

    /// Ends the queue and reads every message before the end.
    pub fn items(&self) -> Result<Vec<Msg<T>>, Error> {
        iter::items(self, false)
    }

    /// Like [`items`](LocalQueue::items), sorted by `order` (messages without one last).
    pub fn items_sorted(&self) -> Result<Vec<Msg<T>>, Error> {
        iter::items(self, true)
    }

    /// How many messages wait (not counting ends).
    pub fn len(&self) -> usize {
        self.hub.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> sealed::Sealed for LocalQueue<T> {}

impl<T> QueueSource for LocalQueue<T> {
    type Data = T;

    fn next_entry(&self, _prefetch: bool, wait: Option<Duration>) -> Result<Next<T>, Error> {
        Ok(match self.hub.take_one(deadline(wait)) {
            Taken::Ready(Entry::Msg(message)) => Next::Msg(message),
            Taken::Ready(Entry::End) => Next::End,
            Taken::Empty => Next::Empty,
            Taken::Closed => {
                return Err(Error::Gone {
                    peer: crate::error::Peer::Queue,
                });
            }
        })
    }

    fn push_end(&self) -> Result<(), Error> {
        self.put_end()
    }

    fn settle(&self) {}
}

impl<'a, T> IntoIterator for &'a LocalQueue<T> {
    type Item = Msg<T>;
    type IntoIter = Iter<'a, LocalQueue<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> Clone for LocalQueue<T> {
    fn clone(&self) -> Self {
        Self {
            hub: Arc::clone(&self.hub),
        }
    }
}

impl<T> fmt::Debug for LocalQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalQueue")
            .field("type", &std::any::type_name::<T>())
            .field("waiting", &self.len())
            .finish()
    }
}
