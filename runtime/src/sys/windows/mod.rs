//! The Windows implementation of the platform layer, over named pipes and Win32 calls, with
//! the item names `sys/unix/` has.
//!
//! Named pipes have no `poll`, no half-close and no read timeouts, so a connection is made to
//! behave like a socket from what they do offer:
//!
//! - [`overlapped`]: overlapped I/O with a deadline and `CancelIoEx`, the one way this layer
//!   waits on a pipe operation.
//! - [`pipe_end`]: one connected end — a reader thread feeding a bounded inbox (readiness and
//!   reads with timeouts come from it), writes with deadlines on the caller's thread, and a
//!   shutdown that closes the handle as soon as nothing uses it.
//! - [`socket`]: the listener (a first instance under a current-user DACL, one instance
//!   always waiting for a client) and the [`Stream`] over a [`pipe_end`].
//! - [`ready`]: the one wait on many streams and listeners, woken by the reader threads and
//!   the listeners' connect events.
//! - [`security`]: the current-user security descriptor every pipe is created with.
//! - [`pending`]: stand-ins for process control, clock, image and shared memory until their
//!   own files land.

mod overlapped;
mod pending;
mod pipe_end;
mod ready;
mod security;
mod socket;

pub(crate) use pending::image::{build_identity, own_executable};
pub(crate) use pending::{
    at_exit, describe_status, exit_now, monotonic_nanos, parent_pid, wait_exited,
};
#[cfg(test)]
pub(crate) use pending::{exit_status_from_code, exit_status_killed};
#[allow(unused_imports)] // the reaper holds `Child` values and asks them; kept for the seam.
pub(crate) use pending::{has_exited, kill};
pub(crate) use pending::{image, shm};
pub(crate) use ready::{Source, wait_readable};
pub(crate) use socket::{Listener, Stream};
