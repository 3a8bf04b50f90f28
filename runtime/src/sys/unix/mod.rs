//! The Unix side of the platform layer.
//!
//! - [`shm`]: shared-memory regions handed between processes (a sealed `memfd` passed over a
//!   connection on Linux), and the non-blocking socket calls the share's coordinator makes.

pub(crate) mod shm;
