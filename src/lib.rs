//! # skprocess
//!
//! Multi-process Rust made easy: annotate an `impl` block with `#[skprocess]` and its lifecycle
//! runs in a real OS process that talks to the parent over a local socket.
//!
//! ```no_run
//! use skprocess::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Doubler { value: u64 }
//!
//! #[skprocess(runs = 3)]
//! impl Doubler {
//!     fn run(&mut self) { self.value *= 2; }
//!     fn result(&mut self) -> u64 { self.value }
//! }
//!
//! #[skprocess::main]
//! fn main() -> Result<(), skprocess::Error> {
//!     assert_eq!(Doubler { value: 5 }.start()?.result()?, 40);
//!     Ok(())
//! }
//! ```
//!
//! Children are the same executable started again: `main` must begin with [`init`] (which
//! `#[skprocess::main]` inserts), and test binaries add [`test_support!`].

pub use skprocess_macros::{main, skprocess};
pub use skprocess_runtime::{
    Config, Ctx, Error, FailureKind, Handle, Hook, HookFailure, HookResult, Message, NoMessages,
    PROCESS_TIMER_WINDOW, Process, ProcessTimers, ResultFuture, Sktimer, Status, Timeouts, init,
    register, wire,
};

/// The names most programs need: the macros, the core types, and serde's derives.
pub mod prelude {
    pub use crate::{Config, Ctx, Error, Handle, Process, skprocess};
    pub use serde::{Deserialize, Serialize};
}

/// Items used by macro-generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use skprocess_runtime::__private::*;
}

/// Makes a test binary double as the child: place `skprocess::test_support!();` once at the top
/// level of each integration-test file that starts processes.
///
/// It runs [`init`] before the test harness starts, so that `cargo test` and `cargo nextest`
/// both work and a child never runs the tests again.
#[macro_export]
macro_rules! test_support {
    () => {
        #[used]
        #[cfg_attr(
            any(target_os = "linux", target_os = "android", target_os = "freebsd"),
            unsafe(link_section = ".init_array")
        )]
        #[cfg_attr(
            target_vendor = "apple",
            unsafe(link_section = "__DATA,__mod_init_func")
        )]
        #[cfg_attr(windows, unsafe(link_section = ".CRT$XCU"))]
        static __SKPROCESS_TEST_SUPPORT: extern "C" fn() = {
            extern "C" fn skprocess_test_support() {
                $crate::init();
            }
            skprocess_test_support
        };
    };
}
