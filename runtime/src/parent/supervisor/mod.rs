//! The supervisor of one process: [`machine`] decides, [`driver`] acts, and [`reader`] lets
//! whoever waits for a message read the connection; [`record`] says what a frame means,
//! whoever read it, and [`handoff`] holds the reader role's state and what readers hand to
//! the driver (the shared view keeps it, so it names nothing above it).

pub(crate) mod driver;
pub(crate) mod handoff;
pub(crate) mod machine;
pub(crate) mod reader;
pub(crate) mod record;
