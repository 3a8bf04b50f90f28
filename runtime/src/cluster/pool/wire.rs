//! What travels through Redis for a map: an entry of the items stream (fields `build`, `job`,
//! `body`, the body an [`EntryBody`]) and the result batches hosts push to a job's list
//! ([`ResultBatch`]). Bodies are postcard, read only by hosts of the caller's build (the
//! `build` field is checked first, as plain text).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::pool::raw::{ItemError, Task};
use crate::protocol::pool::{FunctionOffsets, ItemFailure};
use crate::transport::frame;

/// Field of an entry: the caller's build, in hex.
pub(crate) const FIELD_BUILD: &str = "build";
/// Field of an entry: the job's id (its keys' suffix).
pub(crate) const FIELD_JOB: &str = "job";
/// Field of an entry: the encoded [`EntryBody`].
pub(crate) const FIELD_BODY: &str = "body";

/// What runs the items, as it travels: a function's offsets, or a process type's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireTask {
    /// A `fn` pointer and its trampoline, as offsets valid in the caller's build.
    Function { trampoline: i64, function: i64 },
    /// A registered `#[skprocess]` type.
    Process { key: String },
}

impl WireTask {
    /// The task as it travels.
    pub(crate) fn from_task(task: Task) -> Self {
        match task {
            Task::Function { offset } => Self::Function {
                trampoline: offset.trampoline,
                function: offset.function,
            },
            Task::Process { key } => Self::Process {
                key: key.to_owned(),
            },
        }
    }

    /// The task for this process's local pool; a process type this binary does not
    /// register is refused with its key.
    pub(crate) fn to_task(&self) -> Result<Task, String> {
        match self {
            Self::Function {
                trampoline,
                function,
            } => Ok(Task::Function {
                offset: FunctionOffsets {
                    trampoline: *trampoline,
                    function: *function,
                },
            }),
            Self::Process { key } => crate::registry::find(key)
                .map(|entry| Task::Process { key: entry.key() })
                .ok_or_else(|| format!("process type `{key}` is not registered in this host")),
        }
    }
}

/// One entry's items and how to run them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryBody {
    pub(crate) task: WireTask,
    /// The map's per-item limit.
    pub(crate) timeout: Option<Duration>,
    /// Lives of each item (a process type's; 1 for functions).
    pub(crate) lives: u32,
    /// Deliveries the entry may have.
    pub(crate) attempts: u32,
    /// The items with their indices in the map's input.
    pub(crate) items: Vec<(u64, ByteBuf)>,
}

impl EntryBody {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, frame::WireError> {
        frame::encode(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, frame::WireError> {
        frame::decode_owned(bytes)
    }
}

/// Why an item has no output, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireError {
    Failed(ItemFailure),
    Crashed(String),
    TimedOut(Duration),
    NoWorker(String),
    Terminated,
    Cluster(String),
}

impl WireError {
    /// `error` from the local pool of host `host`, as it travels: a crash or a lost worker
    /// names the host it happened on.
    pub(crate) fn on_host(error: ItemError, host: &str) -> Self {
        match error {
            ItemError::Failed(failure) => Self::Failed(failure),
            ItemError::Crashed(status) => Self::Crashed(format!("{status} on host {host}")),
            ItemError::TimedOut(limit) => Self::TimedOut(limit),
            ItemError::NoWorker(detail) => Self::NoWorker(format!("{detail} (host {host})")),
            ItemError::Terminated => Self::Terminated,
            ItemError::Cluster(detail) => Self::Cluster(detail),
        }
    }

    /// The item error.
    pub(crate) fn into_item_error(self) -> ItemError {
        match self {
            Self::Failed(failure) => ItemError::Failed(failure),
            Self::Crashed(status) => ItemError::Crashed(status),
            Self::TimedOut(limit) => ItemError::TimedOut(limit),
            Self::NoWorker(detail) => ItemError::NoWorker(detail),
            Self::Terminated => ItemError::Terminated,
            Self::Cluster(detail) => ItemError::Cluster(detail),
        }
    }
}

/// Outcomes a host pushes to a job's result list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResultBatch {
    /// The host that ran them (or gave up on them).
    pub(crate) host: String,
    /// Each item's index and its encoded output or why it has none.
    pub(crate) results: Vec<(u64, Result<ByteBuf, WireError>)>,
}

impl ResultBatch {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, frame::WireError> {
        frame::encode(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, frame::WireError> {
        frame::decode_owned(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_batches_round_trip() {
        let body = EntryBody {
            task: WireTask::Function {
                trampoline: -12,
                function: 40,
            },
            timeout: Some(Duration::from_millis(250)),
            lives: 1,
            attempts: 3,
            items: vec![(7, ByteBuf::from(vec![1, 2, 3]))],
        };
        assert_eq!(EntryBody::decode(&body.encode().unwrap()).unwrap(), body);
        let batch = ResultBatch {
            host: "h".into(),
            results: vec![
                (7, Ok(ByteBuf::from(vec![9]))),
                (8, Err(WireError::Crashed("killed by signal 9".into()))),
            ],
        };
        assert_eq!(
            ResultBatch::decode(&batch.encode().unwrap()).unwrap(),
            batch
        );
    }

    #[test]
    fn an_unregistered_process_type_is_refused_with_its_key() {
        let task = WireTask::Process {
            key: "no::such::Type".into(),
        };
        assert!(task.to_task().unwrap_err().contains("no::such::Type"));
    }

    #[test]
    fn a_crash_names_the_host() {
        let wire = WireError::on_host(ItemError::Crashed("killed by signal 9".into()), "h1");
        assert_eq!(
            wire.into_item_error(),
            ItemError::Crashed("killed by signal 9 on host h1".into())
        );
    }
}
