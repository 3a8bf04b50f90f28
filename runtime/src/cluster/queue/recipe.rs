//! What a handle to a queue on a cluster carries between processes: where the queue is and
//! its limits, never the password. Apart from `mod.rs` so the queue's handle names it without
//! importing the code that opens queues.

use serde::{Deserialize, Serialize};

/// What a handle to a queue on a cluster carries to another process: no password, only the
/// variable that holds it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recipe {
    pub(crate) url: String,
    pub(crate) password_env: String,
    /// The variable naming the CA file there: the path may differ per machine.
    pub(crate) ca_env: String,
    pub(crate) cluster: String,
    pub(crate) queue: String,
    pub(crate) capacity: u64,
    pub(crate) max_message: u32,
    /// `None`: no lease (a reader's holds last as long as its process).
    pub(crate) lease_ms: Option<u64>,
}

impl Recipe {
    /// The key of this queue's `Stream` in a process: the server, the cluster, the queue.
    pub(crate) fn registry_key(&self) -> String {
        format!("{} {} {}", self.url, self.cluster, self.queue)
    }
}
