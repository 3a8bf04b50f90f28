//! Runtime of [skprocess](https://docs.rs/skprocess): everything that runs.
//!
//! Users depend on the `skprocess` facade, which re-exports this crate's public API together
//! with the attribute macros. The pieces:
//!
//! - [`Process`]: the lifecycle trait `#[skprocess]` implements; [`Handle`] is the parent's side
//!   of a running process and [`Ctx`] the hook's side.
//! - [`init`]: the entry hook that turns a re-executed binary into a child.
//! - [`wire`]: length-prefixed frames with a size limit and the codec seam.

mod child;
mod config;
mod context;
mod error;
mod handle;
mod process;
mod registry;
mod supervise;
mod timing;
mod transport;
mod watchdog;
pub mod wire;

pub use child::init;
pub use config::{Config, Timeouts};
pub use context::Ctx;
pub use error::{Error, FailureKind, Hook, PerHook};
pub use handle::{Handle, ResultFuture, Status};
pub use process::{HookFailure, HookResult, Message, NoMessages, Process};
pub use timing::{PROCESS_TIMER_WINDOW, ProcessTimers, Sktimer};

/// Items used by macro-generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::Config;
    pub use crate::context::Ctx;
    pub use crate::error::{Error, Hook};
    pub use crate::process::{
        FallibleOutput, HookFailure, HookResult, IntoHookResult, Message, NoMessages, Process,
    };
    pub use crate::registry::{PROCESS_TYPES, ProcessEntry};
    pub use linkme;
}
