//! The platform layer: the place the runtime asks the OS about itself. It depends on nothing
//! else in the crate.
//!
//! - [`image`]: the code of the running executable — whether an address is code of the image
//!   that holds a given symbol, so an offset from a peer is never called blindly.
//! - `unix`: the Unix implementation of the rest (selected here; a Windows one follows with
//!   the same item names).

pub(crate) mod image;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
