//! The registry of process types, filled at link time by `#[skprocess]` (or [`register!`]).

use crate::context::ChildLink;
use crate::process::Process;
use crate::wire::StartPayload;

/// One registered process type: its stable key and the function that runs it in a child.
pub struct ProcessEntry {
    key: &'static str,
    pub(crate) run_child: fn(ChildLink, StartPayload) -> i32,
}

impl ProcessEntry {
    /// The entry for `P`, keyed by [`Process::KEY`].
    pub const fn of<P: Process>() -> Self {
        Self {
            key: P::KEY,
            run_child: crate::child::run_child::<P>,
        }
    }
}

inventory::collect!(ProcessEntry);

/// Finds the entry registered under `key`.
pub(crate) fn find(key: &str) -> Option<&'static ProcessEntry> {
    inventory::iter::<ProcessEntry>().find(|entry| entry.key == key)
}

/// Registers a type that implements [`Process`] by hand, so children can rebuild it.
///
/// `#[skprocess]` does this for you; this is the same without the macro.
#[macro_export]
macro_rules! register {
    ($process:ty) => {
        $crate::__private::inventory::submit! {
            $crate::__private::ProcessEntry::of::<$process>()
        }
    };
}
