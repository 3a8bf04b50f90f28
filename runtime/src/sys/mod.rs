//! The platform layer: the one place the runtime talks to the OS. It depends on nothing else
//! in the crate, and everything above it (transport, protocol, parent, child, features) asks
//! it instead of naming `libc` or `std::os::*`.
//!
//! The seam is the set of item names re-exported here — local-socket [`Listener`] and
//! [`Stream`], one wait on many of them ([`wait_readable`]), process control ([`kill`],
//! [`wait_exited`], [`has_exited`], [`describe_status`], [`exit_now`]), the shared monotonic clock
//! ([`monotonic_nanos`]) and the running image ([`own_executable`], [`build_identity`],
//! [`image::is_code_beside`]). `sys/unix/` implements them for Unix and `sys/windows/` gives
//! the same names over named pipes; what is the same on both (the build identity made of
//! what each platform's linker wrote, in `identity.rs`) is written once here. The portable code above therefore sticks to what a
//! named pipe can do too: a blocking reader per connection, writes with deadlines, wake-ups by
//! message rather than by descriptor, and waits on many streams only for readiness and
//! hang-up.

mod identity;
pub(crate) use identity::build_identity;
#[cfg(test)]
mod image_tests;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
