//! The supervisor of one process: [`machine`] decides, [`driver`] acts.

pub(crate) mod driver;
pub(crate) mod machine;
