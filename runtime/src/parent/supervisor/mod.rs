//! The supervisor of one process: [`machine`] decides, [`driver`] acts, and [`reader`] lets
//! whoever waits for a message read the connection.

pub(crate) mod driver;
pub(crate) mod machine;
pub(crate) mod reader;
