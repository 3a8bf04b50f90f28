//! The platform layer: the place the runtime asks the OS about itself. It depends on nothing
//! else in the crate.
//!
//! - [`image`]: the code of the running executable — whether an address is code of the image
//!   that holds a given symbol, so an offset from a peer is never called blindly.
//! - [`wait`]: waiting for a child's exit without reaping it, for the one reaper.

pub(crate) mod image;
pub(crate) mod wait;
