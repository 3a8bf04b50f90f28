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

#![deny(missing_docs)]

pub use skprocess_macros::{autoreconnect, main, shared, skprocess};
#[cfg(feature = "cluster")]
pub use skprocess_runtime::cluster::{self, Cluster, serve};
pub use skprocess_runtime::pipe::{self, Anchor, OneWay, Pipe, PipeConfig, PipeError, Point};
pub use skprocess_runtime::queue::{self, LocalQueue, Msg, Queue, QueueConfig};
pub use skprocess_runtime::reconnect::{self, Live};
pub use skprocess_runtime::{
    ApplyError, Asynced, Background, BreakingCircuit, CapturedOutput, ChildContext, Circuit,
    CircuitState, Config, Ctx, Deliver, Element, Error, FailureKind, Field, FieldOp, Handle, Hook,
    HookFailure, HookResult, Imap, Job, MapFuture, Maps, Message, MethodMeta, Mode, NoMessages,
    Now, PROCESS_TIMER_WINDOW, PanicLocation, PerHook, Plain, Pool, PoolConfig, Process,
    ProcessTimers, ResultFuture, Role, Share, Shared, SharedField, SharedMeta, Sktimer, Star,
    Status, Stdio, TellError, Timeouts, TimerStats, WHOLE_VALUE, init, register, wire,
};
pub use skprocess_runtime::{ProcessQueue, ProcessQueueConfig};
pub use skprocess_runtime::{Worker, map, num_cpus, run, run_thread};
pub use skprocess_runtime::{WorkerKillHandle, WorkerResource, WorkerStatus};

/// The names most programs need: the macros, the core types, and serde's derives.
pub mod prelude {
    pub use crate::{
        Config, Ctx, Error, Handle, Pool, Process, Share, TellError, shared, skprocess,
    };
    pub use crate::{Live, Pipe, PipeError, autoreconnect};
    pub use crate::{LocalQueue, Msg, Queue};
    pub use serde::{Deserialize, Serialize};
}

/// README's code blocks, compiled and run as doctests (`cargo test --doc`), so none of them
/// goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Items used by macro-generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use skprocess_runtime::__private::*;
}

/// Makes a test binary double as the child: place `skprocess::test_support!();` once at the top
/// level of each integration-test file (or test module) that starts processes.
///
/// It adds one hidden test, `__skprocess_child_entry`. A child started from this binary is the
/// binary re-executed into exactly that test, so the child runs after the Rust runtime and the
/// test harness are up, on a thread named `main` like a `#[skprocess::main]` child, and never
/// runs your tests. In a normal test run the hidden test passes at once. `cargo test` and
/// `cargo nextest run` both work.
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        #[doc(hidden)]
        fn __skprocess_child_entry() {
            $crate::__private::run_test_child();
        }

        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::TEST_ENTRIES)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: &'static str = ::core::module_path!();
        };
    };
}
