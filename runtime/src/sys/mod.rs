//! The platform layer: the place the runtime asks the OS about itself. It depends on nothing
//! else in the crate.
//!
//! - [`image`]: the code of the running executable — whether an address is code of the image
//!   that holds a given symbol, so an offset from a peer is never called blindly.

pub(crate) mod image;
