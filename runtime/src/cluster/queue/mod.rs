//! A queue whose messages live on the cluster's Redis server: the same [`Queue`] handle, read
//! by any process that reaches the server and names the same cluster and queue.
//!
//! How the parts fit:
//!
//! - Here: [`Queue::on`] / [`Queue::on_with`] open the queue `skp:N:queue:<name>` (`keys.rs`
//!   has its layout and lifetime) and give an ordinary [`Queue`] whose calls go to a
//!   [`Stream`] instead of a broker; [`Recipe`] is what a handle carries to another process
//!   (the server's URL, the variable holding its password — never the password — and the
//!   queue's limits), and [`Stream::open`] makes one `Stream` per process and queue.
//! - `stream.rs`: puts (a script that adds only while the queue has room, so a full queue
//!   makes `put` wait like the local one), ends, and reads: each thread has its own
//!   connection and its message in hand; the next read acknowledges it (`XACK` + `XDEL`,
//!   pipelined with the `XREADGROUP` that reads the next, which blocks at most 250 ms so that
//!   messages readers left behind are seen soon). Those are found and taken over with the
//!   pool's claim code (`XPENDING … IDLE` → `claim::to_claim` → `XCLAIM`).
//! - `held.rs`: the messages this process holds; with an unlimited lease a thread touches
//!   them every [`HEARTBEAT`](crate::cluster::HEARTBEAT), so only a reader that stopped
//!   leaves them idle long enough to be claimed.

mod held;
pub(crate) mod recipe;
pub(crate) mod stream;

use recipe::Recipe;
use stream::Stream;

use std::time::Duration;

use crate::cluster::Cluster;
use crate::error::Error;
use crate::queue::{Queue, QueueConfig, QueueData};

/// The queue [`Queue::on`] opens.
pub const DEFAULT_QUEUE: &str = "default";

impl<T: QueueData> Queue<T> {
    /// The queue [`DEFAULT_QUEUE`] of `cluster`, with the
    /// default [`QueueConfig`]: the same calls as [`Queue::new`], with the messages kept in a
    /// Redis stream, so readers and writers may be on any host.
    ///
    /// Every process that opens the same cluster and queue name on the same server (or
    /// receives a handle) reads and writes the same queue; it has no creating process, so
    /// it never closes: it lives on the server until [`QUEUE_TTL`](crate::cluster::QUEUE_TTL)
    /// after its last put or read.
    ///
    /// **Delivery** follows the local queue's rule: a message taken by a thread is
    /// acknowledged when that thread takes its next one, calls [`ack`](Queue::ack), ends an
    /// iteration early, or ends, or when the process's last handle of the queue is dropped.
    /// A message not acknowledged goes back to the other readers when its reader's process
    /// stops (its holds are no longer touched: within about
    /// [`HOST_TTL`](crate::cluster::HOST_TTL)), or, with a [`QueueConfig::lease`], when it
    /// was held that long — whether or not the process still runs. So delivery is
    /// at-least-once: make the handling idempotent when a duplicate matters. Handles of one
    /// queue should agree on the lease (a reader takes over by its own).
    ///
    /// **Limits**: [`QueueConfig::capacity`] bounds the messages waiting (messages in a
    /// reader's hand do not count), [`QueueConfig::max_message_bytes`] is the largest
    /// message ([`Error::TooLarge`]); `prefetch` and `socket_dir` do not apply (each read
    /// takes one message). [`len`](Queue::len) is `None`. A server that cannot be reached
    /// fails the call with [`Error::Cluster`]; the next call connects again.
    pub fn on(cluster: &Cluster) -> Result<Self, Error> {
        Self::on_with(cluster, DEFAULT_QUEUE, QueueConfig::default())
    }

    /// The queue `name` of `cluster` (1 to 64 ASCII letters, digits, `-`, `_` or `.`), set up
    /// with `config` (see [`on`](Queue::on)).
    pub fn on_with(cluster: &Cluster, name: &str, config: QueueConfig) -> Result<Self, Error> {
        crate::cluster::keys::check_name(name).map_err(|problem| Error::Config { problem })?;
        let recipe = Recipe {
            url: cluster.server().url().to_owned(),
            password_env: cluster.server().password_env().to_owned(),
            ca_env: cluster.server().ca_env().to_owned(),
            cluster: cluster.name().to_owned(),
            queue: name.to_owned(),
            capacity: u64::try_from(config.capacity).unwrap_or(u64::MAX),
            max_message: config.max_message_bytes,
            lease_ms: (config.lease != Duration::MAX)
                .then(|| crate::cluster::link::millis(config.lease)),
        };
        let stream = Stream::open(&recipe)?;
        stream.ready()?;
        Ok(Self::on_stream(stream))
    }
}
