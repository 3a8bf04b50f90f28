//! Child log forwarding: `tracing` events and `log` records emitted in any child reach the
//! parent's subscriber, with the child's pid and process type as fields, without the user
//! sharing anything (the Rust form of suitkaise's shared logger).
//!
//! - [`parent`]: one collector per parent process, started at the first spawn: a service that
//!   children connect to, and a thread per child that re-emits each record as a `tracing` event
//!   with target `skprocess::child` (which goes to `log` when no subscriber is set).
//! - [`child`]: installed by the bootstrap before any user code runs, when the parent passed
//!   the collector's endpoint at spawn (`SKPROCESS_LOGS`): a global `tracing` subscriber and a
//!   `log` logger that send every record to the parent. A child program that installs its own
//!   subscriber first keeps it.

pub(crate) mod child;
pub(crate) mod parent;

use serde::{Deserialize, Serialize};

/// The environment variable that tells a child where to send its records.
pub(crate) const ENV_LOGS: &str = "SKPROCESS_LOGS";

/// What a child sends: first [`LogMessage::Hello`], then records.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LogMessage {
    /// The process type this child runs.
    Hello { process: String },
    /// One record.
    Record(LogRecord),
}

/// One log record, rendered in the child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    /// 1 = error … 5 = trace.
    pub(crate) level: u8,
    pub(crate) target: String,
    pub(crate) message: String,
    /// The other fields, `name=value` separated by spaces.
    pub(crate) fields: String,
}

pub(crate) fn level_number(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        _ => 5,
    }
}
