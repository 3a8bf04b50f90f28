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
pub use skprocess_runtime::pipe::{self, Anchor, OneWay, Pipe, PipeConfig, Point};
pub use skprocess_runtime::queue::{self, LocalQueue, Msg, Queue, QueueConfig};
pub use skprocess_runtime::reconnect::{self, Live};
pub use skprocess_runtime::{
    BreakingCircuit, ChildContext, ChildSetup, Circuit, Config, Ctx, Error, Handle, Hook, Pool,
    PoolConfig, Process, ProcessQueue, ProcessQueueConfig, ProcessStatus, Share, Shared, Sktimer,
    Stdio, TrySendError, Worker, WorkerKillHandle, WorkerResource, WorkerStatus, error, init, map,
    num_cpus, register, run, run_thread, run_with,
};

/// Pool maps: the builder that `pool.star()`, `.timeout(d)`, `.progress()`, `.background()`
/// and `.asynced()` return, and what deferred and lazy maps hand back.
pub mod pool {
    /// The typestates of [`Maps`]: the methods pick them, users never name them.
    #[doc(hidden)]
    pub use skprocess_runtime::{Asynced, Background, Deliver, Now, Plain, Star};
    pub use skprocess_runtime::{Imap, Job, MapFuture, Maps, Mode};
}

/// Shared values: the proxy's fields, the built-in operations, the metadata `#[shared]`
/// computes, and the types a hand-written [`Shared`] implementation names.
pub mod share {
    pub use skprocess_runtime::{
        ApplyError, CircuitState, Element, Field, FieldOp, MethodMeta, SharedField, SharedMeta,
        TimerStats, WHOLE_VALUE,
    };
}

/// Processes: what a hand-written [`Process`] implementation names, the per-hook timers and
/// configuration, and the future of [`Handle::result_async`].
pub mod process {
    pub use skprocess_runtime::{
        CapturedOutput, HookFailure, HookResult, Message, NoMessages, PROCESS_TIMER_WINDOW,
        PerHook, ProcessTimers, ResultFuture, Role, Timeouts,
    };
}

/// The names most programs need: the macros, the handles, the error, and serde's derives.
pub mod prelude {
    pub use crate::{
        Config, Ctx, Error, Handle, Pool, Process, ProcessQueue, Share, Sktimer, TrySendError,
        Worker, WorkerResource, shared, skprocess,
    };
    pub use crate::{Live, Pipe, autoreconnect};
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
