//! The Windows implementation of the platform layer: named pipes (through `interprocess`),
//! Job Objects, `TerminateProcess`, `WaitForSingleObject`, the performance counter and the
//! loaded PE image.
//!
//! - [`process`]: ending a process with a code that says "killed", exits seen without taking
//!   the status, exit statuses in words (NTSTATUS crash codes by name), ending this one at once.
//! - [`job`]: no child outlives its parent (a kill-on-close Job Object in the parent, the
//!   parent's handle watched in the child), and the parent's pid.
//! - [`clock`]: the monotonic clock every process on the machine shares.
//! - [`image`]: the running executable, its build identity, and where its code lies.
//! - [`shm`]: no shared-memory regions yet; callers take their socket path.

mod clock;
pub(crate) mod image;
mod job;
mod process;
pub(crate) mod shm;
mod socket;

pub(crate) use clock::monotonic_nanos;
pub(crate) use image::{build_identity, own_executable};
pub(crate) use job::{parent_pid, spawn, watch_parent};
pub(crate) use process::{at_exit, describe_status, exit_now, terminate, wait_exited};
#[cfg(test)]
pub(crate) use process::{exit_status_from_code, exit_status_killed};
#[allow(unused_imports)] // the reaper holds `Child` values and asks them; kept for the seam.
pub(crate) use process::{has_exited, kill};
