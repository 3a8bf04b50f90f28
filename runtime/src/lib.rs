//! Runtime of [skprocess](https://docs.rs/skprocess): everything that runs.
//!
//! Users depend on the `skprocess` facade, which re-exports this crate's public API together
//! with the attribute macros. The layout follows the process boundary:
//!
//! - `transport`: authenticated, framed local-socket connections.
//! - `protocol`: the messages each role exchanges, and credit-based flow control.
//! - `parent`: [`Handle`] and the supervisor that owns spawning, reaping and restarting.
//! - `child`: bootstrap, the lifecycle engine, [`Ctx`] and [`ChildContext`]; `entry`, above it
//!   and the features, holds [`init`] and the one dispatch from a role to its engine.
//! - [`pipe`]: typed pipes whose [`Point`](pipe::Point) moves into another process.
//! - [`reconnect`]: live resources ([`Live`](reconnect::Live)) that reopen in the child.
//! - [`Process`], [`Config`], [`Error`], timers, and the link-time registry of process types.
//!
//! Platforms: Linux is tested; Windows (named pipes) is tested under Wine with the GNU
//! toolchain, which needs `-C link-arg=-Wl,--no-gc-sections` (see the README's "Platforms");
//! macOS and Windows MSVC are only type-checked.

#![deny(missing_docs)]

#[cfg(not(any(unix, windows)))]
compile_error!("skprocess supports Unix and Windows systems only");

mod child;
#[cfg(feature = "cluster")]
pub mod cluster;
mod completion;
mod config;
mod deadline;
mod entry;
pub mod error;
mod failure_text;
mod hook;
#[cfg(test)]
mod layout_tests;
mod logs;
mod message;
mod panics;
mod parent;
pub mod pipe;
mod pool;
mod process;
mod process_queue;
mod process_types;
mod protocol;
pub mod queue;
pub mod reconnect;
mod registry;
mod round_trip;
mod share;
mod sys;
mod timing;
mod transport;
mod worker;
mod worker_status;

pub use child::hook_context::Ctx;
pub use child::runtime_context::ChildContext;
pub use config::{ChildSetup, Config, Stdio, Timeouts};
pub use entry::init;
pub use error::{Error, TrySendError};
pub use hook::{Hook, HookFailure, HookResult, PerHook};
pub use message::Message;
pub use parent::handle::{Handle, ProcessStatus, ResultFuture};
pub use parent::output::CapturedOutput;
/// The typestates of [`Maps`]: users never name them (`pool.star()`, `.background()` and
/// `.asynced()` pick them).
#[doc(hidden)]
pub use pool::{Asynced, Background, Deliver, Now, Plain, Star};
pub use pool::{Imap, Job, MapFuture, Maps, Mode, Pool, PoolConfig};
pub use process::{NoMessages, Process};
pub use process_queue::{ProcessQueue, ProcessQueueConfig};
pub use process_types::ProcessTypes;
pub use protocol::Role;
pub use queue::{LocalQueue, Queue, QueueConfig};
pub use share::builtins::circuit::CircuitState;
pub use share::builtins::collections::Element;
pub use share::{
    ApplyError, BreakingCircuit, Circuit, Field, FieldOp, MethodMeta, Share, Shared, SharedField,
    SharedMeta, TimerStats, WHOLE_VALUE,
};
pub use timing::{PROCESS_TIMER_WINDOW, ProcessTimers, Sktimer};
pub use worker::{Worker, map, num_cpus, run, run_thread, run_with};
pub use worker::{WorkerKillHandle, WorkerResource};
pub use worker_status::WorkerStatus;

/// Items used by macro-generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    /// Frames on the wire: a length prefix, a size limit and the codec seam (for tests and
    /// fuzzing; not public API).
    pub mod wire {
        pub use crate::transport::frame::*;
        /// The hello that opens every connection, read with the same [`FrameReader`].
        pub use crate::transport::rendezvous::{
            Hello, HelloState, hello_frame, hello_reader, read_hello,
        };
    }
    pub use crate::child::hook_context::Ctx;
    pub use crate::config::Config;
    pub use crate::entry::run_test_child;
    pub use crate::error::Error;
    pub use crate::hook::{Hook, HookFailure, HookResult};
    pub use crate::message::Message;
    pub use crate::pool::Canceller;
    pub use crate::process::{FallibleOutput, IntoHookResult, NoMessages, Process};
    pub use crate::protocol::bootstrap::{TEST_ENTRIES, TEST_ENTRY_FN};
    pub use crate::reconnect::{
        AutoReconnect, Reconnect, ReopenError, ReopenNothing, ReopenProbe, ReopenWithAutoReconnect,
        kind_is_one_of, reopen_field, secret_variable,
    };
    pub use crate::registry::{PROCESS_TYPES, ProcessEntry};
    pub use crate::share::generated::{
        LayoutOf, MethodsOf, SharedMethods, ViaMethods, ViaNoMethods, ViaOpaque, ViaSharedField,
        assert_shared_field, assert_travels,
    };
    pub use crate::share::{
        ApplyError, Field, FieldOp, Layout, Link, MethodMeta, Shared, SharedField, SharedMeta,
        Target, decode_args, encode_reply,
    };
    pub use linkme;
    pub use serde;
}
