//! The parent side: what runs in the process that starts children.
//!
//! - [`handle`]: [`Handle`](crate::Handle), the user's side of a running process.
//! - [`supervisor`]: one thread per process that reads its connection and owns spawning,
//!   reaping and restarting — a state machine without I/O and the driver that runs it.
//! - [`spawn`]: the one spawn path — re-executes the binary and brings a child of any role up
//!   to its start message; every feature that starts a process goes through it.
//! - [`reaper`]: the one reaper, which learns of every child's exit by an event and reaps it.
//! - [`shared`]: the state the handle and the driver share.
//! - [`exit`]: how a child ended, in words.
//! - [`output`]: where a child's standard streams go, and its environment, working directory
//!   and arguments.

pub(crate) mod exit;
pub(crate) mod handle;
pub(crate) mod output;
pub(crate) mod reaper;
pub(crate) mod shared;
pub(crate) mod spawn;
pub(crate) mod supervisor;
