//! What a queue carries and how it is set up: [`Msg`], [`QueueData`], [`QueueConfig`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::{LocalQueue, Queue};
#[cfg(doc)]
use crate::error::Error;

/// One message of a queue: the data, and optionally a `kind` and an `order` (ezq's `Msg`; not
/// `Message`, which names the process message trait).
///
/// ```ignore
/// q.put(7)?;                                                  // data only
/// q.put_message(Msg::new(7).kind("ODD").order(3))?;       // with a kind and an order
/// for message in &q { println!("{} {:?} {:?}", message.data, message.kind, message.order); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Msg<T> {
    /// What the reader works on.
    pub data: T,
    /// What sort of work this is, when one queue carries several (ezq's `kind`).
    pub kind: Option<String>,
    /// Its place in a sequence, for [`Queue::sorted`] and [`Queue::items_sorted`].
    pub order: Option<u64>,
}

impl<T> Msg<T> {
    /// A message of `data`, without a kind or an order.
    pub fn new(data: T) -> Self {
        Self {
            data,
            kind: None,
            order: None,
        }
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: u64) -> Self {
        self.order = Some(order);
        self
    }
}

/// What a cross-process [`Queue`] can carry: data that serializes, deserializes, and can move
/// between threads. Implemented for every such type; between threads of one process, a
/// [`LocalQueue`] carries anything `Send`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel on a cross-process `Queue`",
    label = "this type is not `Serialize + DeserializeOwned + Send + 'static`",
    note = "derive `Serialize` and `Deserialize` for it, or use `Queue::local()` between threads of one process"
)]
pub trait QueueData: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> QueueData for T {}

/// How a [`Queue`] is set up: start from the default and change what you need.
///
/// ```ignore
/// let mut config = QueueConfig::default();
/// config.capacity = 100;
/// let q: Queue<u64> = Queue::with_config(config)?;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// How many messages the queue holds before `put` waits (messages leased to readers do not
    /// count). Default 10 000.
    pub capacity: usize,
    /// How many messages a reader in another process fetches at once while iterating (at most
    /// its fair share of what waits, so a second reader is never starved). Default 256.
    pub prefetch: u32,
    /// The largest encoded message; a larger one is [`Error::TooLarge`] at `put`. Default
    /// 16 MiB.
    pub max_message_bytes: u32,
    /// Directory in which the broker's private socket directory is created. Default: `None`,
    /// an abstract socket name on Linux (no file at all), [`std::env::temp_dir`] elsewhere.
    pub socket_dir: Option<std::path::PathBuf>,
    /// How long a reader in another process may stay silent — take no message, acknowledge
    /// nothing, make no call — before what it holds (the message in its hand and what it
    /// prefetched) goes back to the queue for other readers: for readers that may be stopped
    /// (`SIGSTOP`), frozen or hung. A reader whose handling of one message can take longer
    /// must [`ack`](Queue::ack) it first or risk a duplicate. Default `Duration::MAX`: no
    /// limit (a reader's leases last as long as its process).
    pub lease: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            prefetch: 256,
            max_message_bytes: 16 * 1024 * 1024,
            socket_dir: None,
            lease: Duration::MAX,
        }
    }
}
