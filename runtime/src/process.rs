//! The [`Process`] trait: what `#[skprocess]` implements for a user type.
//!
//! It sits above `parent/` and `child/`: its hooks take the child's [`Ctx`] and its `start`
//! returns the parent's [`Handle`]. Neither side imports it; each is written against a
//! smaller trait that every `Process` implements here — [`ProcessTypes`] (a leaf: the types
//! `Handle` and `Ctx` are generic over) and the engine's [`Hooks`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child::hook_context::Ctx;
use crate::child::hooks::Hooks;
use crate::config::Config;
use crate::error::Error;
use crate::hook::{Hook, HookFailure, HookResult};
use crate::message::Message;
use crate::parent::handle::Handle;
use crate::process_types::{ProcessTypes, sealed};
use crate::protocol::Role;
use crate::reconnect::ReopenError;
use crate::registry::{self, ProcessEntry};

/// The message type of a process that declares no `inbox` or `outbox`.
///
/// It has no values, so `tell` on such a process cannot be called with anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NoMessages {}

/// A type whose whole lifecycle runs in a child process.
///
/// `#[skprocess]` implements this trait from the hooks of an `impl` block; implementing it by
/// hand is the same without the macro (then also call [`register!`](crate::register)).
/// Every hook has a default that does nothing except [`run`](Process::run), which is required,
/// and [`result`](Process::result), which the macro supplies when the user has none.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process type",
    label = "expected a type whose `impl` block carries `#[skprocess]`",
    note = "annotate the type's `impl` block with `#[skprocess]` (or implement `Process` and call `skprocess::register!`)"
)]
pub trait Process: Serialize + DeserializeOwned + Send + Sized + 'static {
    /// What [`Handle::result`] returns.
    type Output: Message;
    /// Messages the parent sends with [`Handle::tell`] and the child reads with [`Ctx::listen`].
    type Inbox: Message;
    /// Messages the child sends with [`Ctx::tell`] and the parent reads with [`Handle::listen`].
    type Outbox: Message;

    /// The stable registry key the child uses to find this type.
    const KEY: &'static str;

    /// Whether [`error`](Process::error) is implemented; the engine skips it otherwise.
    const HAS_ERROR_HOOK: bool = false;

    /// The configuration a plain [`start`](Process::start) uses.
    fn default_config() -> Config {
        Config::default()
    }

    /// Runs at the start of each iteration.
    fn prerun(&mut self, _ctx: &mut Ctx<Self>) -> HookResult {
        Ok(())
    }

    /// The body of each iteration.
    fn run(&mut self, ctx: &mut Ctx<Self>) -> HookResult;

    /// Runs at the end of each completed iteration.
    fn postrun(&mut self, _ctx: &mut Ctx<Self>) -> HookResult {
        Ok(())
    }

    /// Runs once after the last iteration.
    fn onfinish(&mut self, _ctx: &mut Ctx<Self>) -> HookResult {
        Ok(())
    }

    /// Produces the value the parent receives.
    fn result(&mut self, ctx: &mut Ctx<Self>) -> Result<Self::Output, HookFailure>;

    /// Receives the final error once lives are spent (or `onfinish`/`result` failed) and may
    /// turn it into the output. When it fails, panics or times out, the original error is
    /// delivered instead.
    fn error(&mut self, _ctx: &mut Ctx<Self>, error: &Error) -> Result<Self::Output, HookFailure> {
        Err(HookFailure::new(error))
    }

    /// Reopens the process's live resources ([`Live`](crate::reconnect::Live) fields) in the
    /// child, before the first hook of every start (the first, and each restart after a
    /// crash). A failure is a failure of that start: it costs a life, and the start is tried
    /// again while lives remain.
    ///
    /// `#[skprocess]` implements it to call
    /// [`AutoReconnect::reopen_live`](crate::reconnect::AutoReconnect::reopen_live) when the
    /// type is marked `#[autoreconnect]`; the default reopens nothing.
    fn reopen_live(&mut self) -> Result<(), ReopenError> {
        Ok(())
    }

    /// Starts the process in a child with [`default_config`](Process::default_config).
    fn start(self) -> Result<Handle<Self>, Error> {
        self.start_with(Self::default_config())
    }

    /// Starts the process in a child with the given configuration.
    fn start_with(self, config: Config) -> Result<Handle<Self>, Error> {
        refuse_empty_registry(Self::KEY)?;
        Handle::spawn(self, config)
    }
}

/// Refuses, before anything is spawned, to start a lifecycle child of a binary whose registry
/// is empty: every such child would only report an unknown type, and the cause is the linker
/// (GNU ld on Windows drops linkme's entries), which the error names.
fn refuse_empty_registry(key: &str) -> Result<(), Error> {
    if registry::is_empty() {
        return Err(Error::EmptyRegistry {
            key: key.to_owned(),
        });
    }
    Ok(())
}

impl ProcessEntry {
    /// The entry of a `#[skprocess]` type, run by the lifecycle engine and keyed by
    /// [`Process::KEY`].
    pub const fn lifecycle<P: Process>() -> Self {
        Self {
            key: P::KEY,
            role: Role::Lifecycle,
            run_child: crate::child::engine::run_child::<P>,
            run_in_pool: crate::child::engine::run_in_pool::<P>,
        }
    }
}

impl<P: Process> sealed::Sealed for P {}

impl<P: Process> ProcessTypes for P {
    type Output = <P as Process>::Output;
    type Inbox = <P as Process>::Inbox;
    type Outbox = <P as Process>::Outbox;
    const KEY: &'static str = <P as Process>::KEY;
    const HAS_ERROR_HOOK: bool = <P as Process>::HAS_ERROR_HOOK;
}

impl<P: Process> Hooks for P {
    fn default_config() -> Config {
        <P as Process>::default_config()
    }

    fn reopen_live(&mut self) -> Result<(), String> {
        Process::reopen_live(self).map_err(|e| e.to_string())
    }

    fn call_hook(&mut self, ctx: &mut Ctx<Self>, hook: Hook) -> HookResult {
        match hook {
            Hook::Prerun => self.prerun(ctx),
            Hook::Run => self.run(ctx),
            Hook::Postrun => self.postrun(ctx),
            Hook::Onfinish => self.onfinish(ctx),
            Hook::Result | Hook::Error => Ok(()),
        }
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> Result<Self::Output, HookFailure> {
        Process::result(self, ctx)
    }

    fn error(&mut self, ctx: &mut Ctx<Self>, error: &Error) -> Result<Self::Output, HookFailure> {
        Process::error(self, ctx, error)
    }
}

/// Converts what a user hook returns (`()` or `Result<(), E>`) into a [`HookResult`].
#[diagnostic::on_unimplemented(
    message = "a hook must return `()` or `Result<(), E>` where `E: Display`, found `{Self}`",
    label = "unsupported hook return type"
)]
pub trait IntoHookResult {
    /// Performs the conversion.
    fn into_hook_result(self) -> HookResult;
}

impl IntoHookResult for () {
    fn into_hook_result(self) -> HookResult {
        Ok(())
    }
}

impl<E: std::fmt::Display> IntoHookResult for Result<(), E> {
    fn into_hook_result(self) -> HookResult {
        self.map_err(HookFailure::new)
    }
}

/// Converts what a fallible `result` hook returns (`Result<T, E>`) into the engine's form.
#[diagnostic::on_unimplemented(
    message = "a `result` hook that returns `Result` must use an error type that implements `Display`",
    label = "unsupported `result` return type"
)]
pub trait FallibleOutput {
    /// The success type, which becomes [`Process::Output`].
    type Ok;
    /// Performs the conversion.
    fn into_output(self) -> Result<Self::Ok, HookFailure>;
}

impl<T, E: std::fmt::Display> FallibleOutput for Result<T, E> {
    type Ok = T;
    fn into_output(self) -> Result<T, HookFailure> {
        self.map_err(HookFailure::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifecycle_start_in_a_binary_with_an_empty_registry_is_refused_naming_the_linker_flag() {
        // This test binary registers no process type, as GNU ld on Windows leaves a binary
        // that has some.
        assert!(registry::is_empty());
        let error = refuse_empty_registry("unregistered::Type").unwrap_err();
        assert!(
            matches!(&error, Error::EmptyRegistry { key } if key == "unregistered::Type"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("-C link-arg=-Wl,--no-gc-sections")
        );
    }
}
