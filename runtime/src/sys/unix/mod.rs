//! The Unix implementation of the platform layer: Unix domain sockets (abstract names on
//! Linux, private 0700 directories elsewhere), `poll`, `waitid`, `clock_gettime` and the
//! loader's program headers.
//!
//! - [`socket`]: the listener and stream every connection runs over.
//! - [`private_dir`]: the 0700 directories socket files live in where there is no abstract
//!   name, named after their owner, and the sweep of those whose owner died.
//! - [`poll`]: the one wait on many streams, and the single-stream waits built on it.
//! - [`process`]: signals, liveness without reaping, exit statuses in words, `_exit`.
//! - [`clock`]: the monotonic clock every process on the machine shares.
//! - [`image`]: the running executable, its build identity, and where its code lies.
//! - [`stdio`]: a child handed this process's standard output through its standard input.
//! - [`shm`]: shared-memory regions handed between processes (a sealed `memfd` passed over a
//!   connection on Linux), and the non-blocking socket calls of the share's coordinator.

mod clock;
pub(crate) mod image;
mod poll;
mod private_dir;
mod process;
pub(crate) mod shm;
mod socket;
mod stdio;

pub(crate) use clock::monotonic_nanos;
pub(crate) use image::{linker_identity, own_executable};
pub(crate) use poll::{Source, wait_readable};
pub(crate) use process::{
    at_exit, describe_status, exit_now, parent_pid, spawn, terminate, wait_exited, watch_parent,
};
#[cfg(test)]
pub(crate) use process::{exit_status_from_code, exit_status_killed};
#[allow(unused_imports)] // the reaper holds `Child` values and asks them; kept for the seam.
pub(crate) use process::{has_exited, kill};
pub(crate) use socket::{Listener, Stream};
/// The platform's local stream type, for the public `Reconnect` implementation.
pub(crate) use std::os::unix::net::UnixStream;
pub(crate) use stdio::{stdout_for_child, stdout_from_stdin};
