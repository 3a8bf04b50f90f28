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
//!
//! Processes:
//!
//! - [`process`]: ending a process with a code that says "killed", exits seen without taking
//!   the status, exit statuses in words (NTSTATUS crash codes by name), ending this one at once.
//! - [`job`]: no child outlives its parent (a kill-on-close Job Object in the parent, the
//!   parent's handle watched in the child), and the parent's pid.
//! - [`clock`]: the monotonic clock every process on the machine shares.
//! - [`image`]: the running executable, its build identity, and where its code lies.
//! - [`stdio`]: a child handed this process's standard output through its standard input.
//! - [`shm`]: shared memory, a section handed over as a record frame the receiver duplicates.

mod clock;
pub(crate) mod image;
mod job;
mod overlapped;
mod pipe_end;
mod process;
mod ready;
mod security;
pub(crate) mod shm;
mod socket;
mod stdio;

pub(crate) use clock::monotonic_nanos;
pub(crate) use image::{linker_identity, own_executable};
pub(crate) use job::{parent_pid, spawn, watch_parent};
pub(crate) use process::{at_exit, describe_status, exit_now, terminate, wait_exited};
#[cfg(test)]
pub(crate) use process::{exit_status_from_code, exit_status_killed};
#[allow(unused_imports)] // the reaper holds `Child` values and asks them; kept for the seam.
pub(crate) use process::{has_exited, kill};
pub(crate) use ready::{Source, wait_readable};
pub(crate) use socket::{Listener, Stream};
pub(crate) use stdio::{stdout_for_child, stdout_from_stdin};
