//! The lifecycle hooks, [`PerHook`] (one value per hook) and what a hook reports
//! ([`HookResult`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Hook {
    /// `prerun`, at the start of each iteration.
    Prerun,
    /// `run`, the body of each iteration.
    Run,
    /// `postrun`, at the end of each iteration.
    Postrun,
    /// `onfinish`, once after the last iteration.
    Onfinish,
    /// `result`, which produces the output.
    Result,
    /// `error`, which handles the final error.
    Error,
}

impl Hook {
    /// Every hook, in lifecycle order.
    pub const ALL: [Hook; 6] = [
        Hook::Prerun,
        Hook::Run,
        Hook::Postrun,
        Hook::Onfinish,
        Hook::Result,
        Hook::Error,
    ];

    /// Whether the hook is part of an iteration, so its failure can be retried.
    pub fn is_iteration_hook(self) -> bool {
        matches!(self, Hook::Prerun | Hook::Run | Hook::Postrun)
    }

    /// The hook's name as written in an `impl` block.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerun => "prerun",
            Hook::Run => "run",
            Hook::Postrun => "postrun",
            Hook::Onfinish => "onfinish",
            Hook::Result => "result",
            Hook::Error => "error",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hook reports back to the engine: `Ok(())` to go on, or the failure's text.
pub type HookResult = Result<(), HookFailure>;

/// A hook failure as the engine sees it: the `Display` text of the user's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    /// The user's error rendered with `Display`.
    pub message: String,
}

impl HookFailure {
    /// Wraps any displayable error.
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self {
            message: error.to_string(),
        }
    }
}

/// One value per hook, with a field for each (for example [`Timeouts`](crate::Timeouts) and
/// the hook timers of [`ProcessTimers`](crate::ProcessTimers)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PerHook<T> {
    /// The value for `prerun`.
    pub prerun: T,
    /// The value for `run`.
    pub run: T,
    /// The value for `postrun`.
    pub postrun: T,
    /// The value for `onfinish`.
    pub onfinish: T,
    /// The value for `result`.
    pub result: T,
    /// The value for `error`.
    pub error: T,
}

impl<T> PerHook<T> {
    /// Builds each value from its hook.
    pub fn from_fn(mut value: impl FnMut(Hook) -> T) -> Self {
        Self {
            prerun: value(Hook::Prerun),
            run: value(Hook::Run),
            postrun: value(Hook::Postrun),
            onfinish: value(Hook::Onfinish),
            result: value(Hook::Result),
            error: value(Hook::Error),
        }
    }

    /// The value for `hook`.
    pub fn get(&self, hook: Hook) -> &T {
        match hook {
            Hook::Prerun => &self.prerun,
            Hook::Run => &self.run,
            Hook::Postrun => &self.postrun,
            Hook::Onfinish => &self.onfinish,
            Hook::Result => &self.result,
            Hook::Error => &self.error,
        }
    }

    /// The value for `hook`, to change it.
    pub fn get_mut(&mut self, hook: Hook) -> &mut T {
        match hook {
            Hook::Prerun => &mut self.prerun,
            Hook::Run => &mut self.run,
            Hook::Postrun => &mut self.postrun,
            Hook::Onfinish => &mut self.onfinish,
            Hook::Result => &mut self.result,
            Hook::Error => &mut self.error,
        }
    }

    /// Every hook with its value, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (Hook, &T)> {
        Hook::ALL
            .into_iter()
            .map(move |hook| (hook, self.get(hook)))
    }
}
