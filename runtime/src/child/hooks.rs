//! [`Hooks`]: what the lifecycle engine needs of a process type — its hooks, its default
//! configuration and its live resources. The engine is written against this trait, not
//! against [`Process`](crate::Process): that trait sits above `child/` and `parent/` (its
//! `start` returns a parent-side `Handle`), and implements this one for every type in
//! `process.rs`, so `child/` never imports it.

use crate::child::hook_context::Ctx;
use crate::config::Config;
use crate::error::Error;
use crate::hook::{Hook, HookFailure, HookResult};
use crate::process_types::ProcessTypes;

/// A process type as the engine runs it; implemented for every [`Process`](crate::Process).
pub(crate) trait Hooks: ProcessTypes {
    /// [`Process::default_config`](crate::Process::default_config).
    fn default_config() -> Config;

    /// [`Process::reopen_live`](crate::Process::reopen_live), its error as text.
    fn reopen_live(&mut self) -> Result<(), String>;

    /// Calls `prerun`, `run`, `postrun` or `onfinish`; `result` and `error` return more than
    /// a [`HookResult`] and have their own methods.
    fn call_hook(&mut self, ctx: &mut Ctx<Self>, hook: Hook) -> HookResult;

    /// [`Process::result`](crate::Process::result).
    fn result(&mut self, ctx: &mut Ctx<Self>) -> Result<Self::Output, HookFailure>;

    /// [`Process::error`](crate::Process::error).
    fn error(&mut self, ctx: &mut Ctx<Self>, error: &Error) -> Result<Self::Output, HookFailure>;
}
