//! The messages between a [`WorkerResource`](super::WorkerResource) and its process.
//!
//! The process starts like a pool worker (token, start with the build identity, `Ready` or
//! `Refused` as [`ToPool`](crate::protocol::pool::ToPool) messages), in the role
//! `ResidentWorker`. Then the parent sends [`ToResident`] messages and the process answers
//! each `Call` and `Status` with one [`FromResident`], in the order they came.

use serde::{Deserialize, Serialize};

use crate::protocol::pool::{FunctionOffsets, ItemFailure};
use crate::worker_status::WorkerStatus;

/// Parent → resident worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToResident<'a> {
    /// Run the current function on this encoded item.
    Call(#[serde(borrow, with = "serde_bytes")] &'a [u8]),
    /// From now on, run the function at these offsets (the same build's).
    SetFunction { offset: FunctionOffsets },
    /// Answer with the worker's statistics.
    Status,
    /// Nothing follows: exit cleanly once the messages before this one are answered. Said
    /// in a message because a named pipe has no half-close to say it with.
    Finish,
}

/// Resident worker → parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromResident<'a> {
    /// The encoded output of a call.
    Output(#[serde(borrow, with = "serde_bytes")] &'a [u8]),
    /// Why a call has no output (a panic, a decoding failure).
    Failed(ItemFailure),
    /// The statistics, measured in the worker.
    Status(WireStatus),
}

/// A worker's statistics on the wire, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireStatus {
    pub(crate) uptime: u64,
    pub(crate) busy: u64,
    pub(crate) starved: u64,
    pub(crate) items: u64,
}

impl WorkerStatus {
    /// The status a worker sent, in nanoseconds on the wire.
    pub(crate) fn from_wire(wire: WireStatus) -> Self {
        Self {
            uptime: std::time::Duration::from_nanos(wire.uptime),
            busy: std::time::Duration::from_nanos(wire.busy),
            starved: std::time::Duration::from_nanos(wire.starved),
            items: wire.items,
        }
    }
}
