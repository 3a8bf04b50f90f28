//! Queues between processes and threads (ezq's `Q`): [`Queue`] crosses processes,
//! [`LocalQueue`] (from [`Queue::local`]) stays among the threads of one process.
//!
//! ```text
//! mod.rs     Queue
//! message.rs Msg, QueueData, QueueConfig
//! recipe.rs  a handle as it travels to another process, and made again there
//! local.rs   LocalQueue: the thread-only variant, CanCrossProcesses
//! many.rs    put_many: batches, and what a timed one gives back
//! stop.rs    Readers: what `stop` waits for
//! iter.rs    Iter, TryIter, Sorted, Next, QueueSource
//! hub.rs     the buffer behind a mutex and condition variables
//! buffer.rs  the buffer, its ends and leases (sans-IO)
//! sorted.rs  reordering by `order` (sans-IO)
//! broker.rs  the creating process's service: a thread per connection
//! lease.rs   what a remote reader and the broker share: what it finished, a revocation
//! keeper.rs  with a lease: gives back what silent readers hold
//! remote.rs  a handle's connection from another process, one per thread
//! ```

mod broker;
mod buffer;
mod hub;
mod iter;
mod keeper;
mod lease;
mod local;
mod many;
mod message;
mod recipe;
mod remote;
mod sorted;
mod stop;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "cluster")]
use crate::cluster::queue::stream::{Read as ClusterRead, Stream as ClusterStream};
use crate::error::{Error, TrySendError};
use crate::queue::broker::Broker;
use crate::queue::buffer::Entry;
use crate::queue::hub::{Put, Taken};
use crate::queue::remote::{Fetched, with_link};
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;

pub use iter::{Iter, Next, QueueSource, Sorted, TryIter};
pub use local::{CanCrossProcesses, LocalQueue};
pub use message::{Msg, QueueConfig, QueueData};
pub use stop::Readers;

/// Room for a request's or a batch's header (and a length prefix) around the largest message.
const FRAME_SLACK: u32 = broker::BATCH_HEADER + 4;

/// A bounded multi-producer, multi-consumer queue between processes and threads (ezq's `Q`).
///
/// ```ignore
/// fn worker(q: Queue<u64>, out: Queue<u64>) {
///     let total: u64 = q.iter().map(|m| m.data).sum();
///     out.put(total).unwrap();
/// }
///
/// let (q, out) = (Queue::new()?, Queue::new()?);
/// let workers = (0..4).map(|_| skprocess::run(worker as fn(Queue<u64>, Queue<u64>), (q.clone(), out.clone())))
///     .collect::<Result<Vec<_>, _>>()?;
/// for i in 0..1000 { q.put(i)?; }
/// q.stop(&workers)?;                       // one end per worker, then wait for them
/// assert_eq!(out.items()?.iter().map(|m| m.data).sum::<u64>(), 499_500);
/// ```
///
/// **Where it lives.** `Queue::new` starts a broker in this process: the buffer (bounded by
/// [`QueueConfig::capacity`]) and a private socket. Clones in this process use the buffer
/// directly (a mutex and condition variables: a put makes no system call unless a reader is
/// waiting). The handle is `Serialize + Deserialize`: it travels in a `#[skprocess]` state, a
/// pool item or `run`'s arguments and connects on first use, one connection per thread, so
/// threads sharing a handle never wait behind each other. Readers in other processes fetch
/// messages in batches while iterating. When the last handle in the creating process is
/// dropped the queue closes: calls elsewhere fail with [`Error::Gone`] ([`Peer::Queue`](crate::error::Peer::Queue)), never hang.
/// With the feature `cluster`, `Queue::on(&cluster)` gives the same handle on a Redis stream
/// instead, read from any host (see its documentation).
///
/// **Ends.** [`put_end`](Queue::put_end) appends one end; the reader that reads it stops (its
/// iteration ends), so `n` readers need `n` ends — [`stop`](Queue::stop) appends one per
/// reader and waits for them.
///
/// **Delivery.** A message handed to a reader in another process is acknowledged when that
/// reader takes its next message, calls [`ack`](Queue::ack), drops its handle (the process's
/// last one; a process's state and `run`'s arguments are dropped when they end) or its thread
/// ends; if its process
/// dies first, only the message in hand and those prefetched but not yet handed go back to
/// the front of the queue for another reader. So no message is lost to a crash, and a crash
/// causes at most one duplicate: make the handling idempotent (key results by something in
/// the message) when that matters. With [`QueueConfig::lease`], a reader silent that long
/// (stopped, frozen) gives back what it holds. Readers in the creating process take messages
/// without a lease (if they die, so does the queue).
pub struct Queue<T> {
    endpoint: Endpoint,
    max_frame: u32,
    /// The largest encoded message.
    max_message: u32,
    prefetch: u32,
    /// Only in the process that created the queue.
    broker: Option<Arc<Broker>>,
    /// A queue on a cluster's server ([`Queue::on`]): every call goes there, and the
    /// broker's fields above are unused.
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<ClusterStream>>,
    _data: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    /// A queue for the threads of this process only: no serialization, no sockets, and any
    /// `Send` data (a database connection, say). Its handle cannot be sent to another process
    /// (a compile error: see [`CanCrossProcesses`]).
    pub fn local() -> LocalQueue<T> {
        LocalQueue::new(QueueConfig::default().capacity)
    }

    /// A handle whose calls go to `stream`, a queue on a cluster's server (`Queue::on`).
    #[cfg(feature = "cluster")]
    pub(crate) fn on_stream(stream: Arc<ClusterStream>) -> Self {
        Self {
            // A queue on a cluster has no broker: these are never used.
            endpoint: Endpoint {
                address: std::path::PathBuf::new(),
                token: String::new(),
            },
            max_frame: 0,
            max_message: stream.recipe().max_message,
            prefetch: 1,
            broker: None,
            cluster: Some(stream),
            _data: PhantomData,
        }
    }

    /// Whether this handle's queue is elsewhere than a cluster's server, with no broker in
    /// this process: a remote reader of a broker.
    fn is_remote(&self) -> bool {
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            return false;
        }
        self.broker.is_none()
    }
}

impl<T: QueueData> Queue<T> {
    /// A queue with the default [`QueueConfig`]: starts its broker in this process.
    pub fn new() -> Result<Self, Error> {
        Self::with_config(QueueConfig::default())
    }

    /// A queue set up with `config`.
    pub fn with_config(config: QueueConfig) -> Result<Self, Error> {
        let max_frame = config
            .max_message_bytes
            .saturating_add(FRAME_SLACK)
            .max(64 * 1024);
        let broker = Broker::start(
            config.capacity,
            max_frame,
            config.socket_dir.as_deref(),
            config.lease,
        )?;
        Ok(Self {
            endpoint: broker.endpoint().clone(),
            max_frame,
            max_message: config.max_message_bytes,
            prefetch: config.prefetch.max(1),
            broker: Some(Arc::new(broker)),
            #[cfg(feature = "cluster")]
            cluster: None,
            _data: PhantomData,
        })
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

    /// Appends every message of `messages` in order, waiting for room as needed. In another
    /// process they travel in batches (one round trip per batch instead of one per message);
    /// in the creating process this is `put_message` in a loop.
    ///
    /// A failure stops the batch: the messages sent before it are in the queue, the rest are
    /// not.
    pub fn put_many(&self, messages: impl IntoIterator<Item = Msg<T>>) -> Result<(), Error> {
        self.put_many_until(messages, None).map_err(Error::from)
    }

    /// Like [`put_many`](Queue::put_many), waiting for room up to `timeout` in all
    /// (`Duration::MAX`: no limit). When the queue stays full that long,
    /// [`TrySendError::Full`] gives back the messages not put, in order: the first that found
    /// no room and every one after it (the rest of `messages` is collected for that). Those
    /// before it are in the queue, each once. A failure ([`TrySendError::Failed`]) stops the
    /// batch as in `put_many`.
    pub fn put_many_timeout(
        &self,
        messages: impl IntoIterator<Item = Msg<T>>,
        timeout: Duration,
    ) -> Result<(), TrySendError<Vec<Msg<T>>>> {
        self.put_many_until(messages, deadline(Some(timeout)))
    }

    /// Appends `data`, waiting for room up to `timeout`; a queue that stays full gives it back.
    pub fn put_timeout(&self, data: T, timeout: Duration) -> Result<(), TrySendError<T>> {
        self.put_message_timeout(Msg::new(data), timeout)
            .map_err(|error| match error {
                TrySendError::Full(message) => TrySendError::Full(message.data),
                TrySendError::Failed(error) => TrySendError::Failed(error),
            })
    }

    /// Appends a message, waiting for room up to `timeout` (`Duration::ZERO`: only if there
    /// is room now); a queue that stays full gives it back.
    pub fn put_message_timeout(
        &self,
        message: Msg<T>,
        timeout: Duration,
    ) -> Result<(), TrySendError<Msg<T>>> {
        self.send(message, deadline(Some(timeout)))
    }

    /// Appends a message, waiting for room until `until` (`None`: as long as it takes).
    fn send(&self, message: Msg<T>, until: Option<Instant>) -> Result<(), TrySendError<Msg<T>>> {
        let encoded = match self.encode(&message) {
            Ok(encoded) => encoded,
            Err(error) => return Err(TrySendError::Failed(error)),
        };
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            return match stream.put(&[encoded.as_slice()], until) {
                Ok(1) => Ok(()),
                Ok(_) => Err(TrySendError::Full(message)),
                Err(error) => Err(TrySendError::Failed(error)),
            };
        }
        let accepted = match &self.broker {
            Some(broker) => match broker.hub().put(encoded, until, || true) {
                Put::Accepted => Ok(true),
                Put::Full(_) => Ok(false),
                Put::Closed(_) => Err(Error::Gone {
                    peer: crate::error::Peer::Queue,
                }),
            },
            None => with_link(&self.endpoint, self.max_frame, |link| {
                link.put(&encoded, wait_left(until))
            }),
        };
        match accepted {
            Ok(true) => Ok(()),
            Ok(false) => Err(TrySendError::Full(message)),
            Err(error) => Err(TrySendError::Failed(error)),
        }
    }

    fn encode(&self, message: &Msg<T>) -> Result<Vec<u8>, Error> {
        let encoded = frame::encode(message)?;
        if encoded.len() > self.max_message as usize {
            return Err(Error::TooLarge {
                size: encoded.len() as u64,
                limit: u64::from(self.max_message),
            });
        }
        Ok(encoded)
    }

    /// Appends one end: the one reader that reads it stops. Never waits for room.
    pub fn put_end(&self) -> Result<(), Error> {
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            return stream.end();
        }
        match &self.broker {
            Some(broker) => {
                broker.hub().push_end();
                Ok(())
            }
            None => with_link(&self.endpoint, self.max_frame, |link| link.end()),
        }
    }

    /// Appends one end per reader and waits until every reader has ended (ezq's `stop`):
    /// a worker, a slice, a `Vec` or an array of them, or a process [`Handle`](crate::Handle).
    pub fn stop<R: Readers + ?Sized>(&self, readers: &R) -> Result<(), Error> {
        self.stop_timeout(readers, Duration::MAX).map(drop)
    }

    /// Like [`stop`](Queue::stop), waiting at most `timeout` for the readers; `Ok(false)`
    /// when some still run then.
    pub fn stop_timeout<R: Readers + ?Sized>(
        &self,
        readers: &R,
        timeout: Duration,
    ) -> Result<bool, Error> {
        iter::stop_timeout(self, readers, timeout)
    }

    /// The next message, waiting as long as it takes; `None` when this reader read an end.
    /// In another process, taking it acknowledges the one this thread took before (see
    /// "Delivery" above).
    pub fn get(&self) -> Result<Option<Msg<T>>, Error> {
        iter::get(self)
    }

    /// The next message or end, waiting up to `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Next<T>, Error> {
        iter::read_until(self, deadline(Some(timeout)))
    }

    /// Acknowledges the message this thread took last, now: a crash of this process after
    /// this does not deliver it again. Taking the next message, dropping the handle and a
    /// clean end do so anyway; call `ack` when a message is finished long before the next
    /// read (or within [`QueueConfig::lease`]). Nothing to do in the creating process, whose
    /// reads hold no lease.
    pub fn ack(&self) -> Result<(), Error> {
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            return stream.ack();
        }
        match &self.broker {
            Some(_) => Ok(()),
            None => remote::ack(&self.endpoint),
        }
    }

    /// The messages until an end (ezq's `for msg in q`). Also `for message in &queue`.
    ///
    /// # Panics
    ///
    /// The iterator panics if the queue cannot be read (see [`Iter`]);
    /// [`try_iter`](Queue::try_iter) gives the error instead.
    pub fn iter(&self) -> Iter<'_, Self> {
        Iter::new(self)
    }

    /// The messages until an end, or until the first error, which it yields.
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

    /// Ends the queue and reads every message before the end (ezq's `items()`).
    pub fn items(&self) -> Result<Vec<Msg<T>>, Error> {
        iter::items(self, false)
    }

    /// Like [`items`](Queue::items), sorted by `order` (messages without one last).
    pub fn items_sorted(&self) -> Result<Vec<Msg<T>>, Error> {
        iter::items(self, true)
    }

    /// How many messages wait (not counting ends and messages leased to readers); only the
    /// creating process knows, elsewhere `None`.
    pub fn len(&self) -> Option<usize> {
        self.broker.as_ref().map(|broker| broker.hub().len())
    }

    /// Whether no message waits; `None` outside the creating process.
    pub fn is_empty(&self) -> Option<bool> {
        self.len().map(|len| len == 0)
    }

    fn decode(bytes: &[u8]) -> Result<Msg<T>, Error> {
        frame::decode_owned(bytes).map_err(|error| Error::QueueMessage {
            type_name: std::any::type_name::<T>(),
            message: error.to_string(),
        })
    }

    fn next_local(&self, broker: &Broker, wait: Option<Duration>) -> Result<Next<T>, Error> {
        match broker.hub().take_one(deadline(wait)) {
            Taken::Ready(Entry::Msg(bytes)) => Self::decode(&bytes).map(Next::Msg),
            Taken::Ready(Entry::End) => Ok(Next::End),
            Taken::Empty => Ok(Next::Empty),
            Taken::Closed => Err(Error::Gone {
                peer: crate::error::Peer::Queue,
            }),
        }
    }

    fn next_remote(&self, prefetch: bool, wait: Option<Duration>) -> Result<Next<T>, Error> {
        let max = if prefetch { self.prefetch } else { 1 };
        with_link(&self.endpoint, self.max_frame, |link| {
            Ok(match link.next(max, wait)? {
                Fetched::Msg(bytes) => Next::Msg(Self::decode(bytes)?),
                Fetched::End => Next::End,
                Fetched::Empty => Next::Empty,
            })
        })
    }
}

fn deadline(wait: Option<Duration>) -> Option<Instant> {
    crate::deadline::after(wait)
}

/// What is left until `until`, for a broker that waits on this handle's behalf (`None`: no
/// limit).
fn wait_left(until: Option<Instant>) -> Option<Duration> {
    until.map(|until| until.saturating_duration_since(Instant::now()))
}

impl<T> iter::sealed::Sealed for Queue<T> {}

impl<T: QueueData> QueueSource for Queue<T> {
    type Data = T;

    fn next_entry(&self, prefetch: bool, wait: Option<Duration>) -> Result<Next<T>, Error> {
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            return Ok(match stream.next(wait)? {
                ClusterRead::Msg(bytes) => Next::Msg(Self::decode(&bytes)?),
                ClusterRead::End => Next::End,
                ClusterRead::Empty => Next::Empty,
            });
        }
        match &self.broker {
            Some(broker) => self.next_local(broker, wait),
            None => self.next_remote(prefetch, wait),
        }
    }

    fn push_end(&self) -> Result<(), Error> {
        self.put_end()
    }

    fn settle(&self) {
        #[cfg(feature = "cluster")]
        if let Some(stream) = &self.cluster {
            stream.settle();
        }
        if self.is_remote() {
            remote::settle(&self.endpoint);
        }
    }
}

impl<'a, T: QueueData> IntoIterator for &'a Queue<T> {
    type Item = Msg<T>;
    type IntoIter = Iter<'a, Queue<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> Drop for Queue<T> {
    /// The last handle in another process acknowledges what its thread read and gives back
    /// what it prefetched: a reader that takes one message and exits cleanly leaves nothing
    /// behind.
    fn drop(&mut self) {
        if self.is_remote() {
            remote::handle_dropped(&self.endpoint);
        }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        if self.is_remote() {
            remote::handle_made(&self.endpoint);
        }
        Self {
            endpoint: self.endpoint.clone(),
            max_frame: self.max_frame,
            max_message: self.max_message,
            prefetch: self.prefetch,
            broker: self.broker.clone(),
            #[cfg(feature = "cluster")]
            cluster: self.cluster.clone(),
            _data: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("type", &std::any::type_name::<T>())
            .field("address", &self.endpoint.address)
            .field("creator", &self.broker.is_some())
            .field("on_cluster", &(!self.is_remote() && self.broker.is_none()))
            .finish()
    }
}

#[cfg(test)]
mod tests;
