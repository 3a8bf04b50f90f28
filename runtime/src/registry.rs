//! The registry of process types, filled at link time by `#[skprocess]` (or [`register!`]).
//!
//! Each registration is a `static` placed in the [`PROCESS_TYPES`] distributed slice: the linker
//! gathers them into one array, so no code runs before `main` (no ELF constructors) and a child
//! finds its type by walking a plain slice.

use crate::context::ChildLink;
use crate::process::Process;
use crate::wire::StartPayload;

/// One registered process type: its stable key and the function that runs it in a child.
pub struct ProcessEntry {
    key: &'static str,
    pub(crate) run_child: fn(ChildLink, StartPayload) -> i32,
}

impl ProcessEntry {
    /// The entry that runs `P`'s lifecycle in a child, keyed by [`Process::KEY`].
    pub const fn lifecycle<P: Process>() -> Self {
        Self {
            key: P::KEY,
            run_child: crate::child::run_child::<P>,
        }
    }
}

/// Every process type linked into the program, one [`ProcessEntry`] each.
///
/// Filled by the linker from the statics that `#[skprocess]` and [`register!`] generate, in any
/// crate of the program; a child looks its type up here by [`Process::KEY`].
#[linkme::distributed_slice]
pub static PROCESS_TYPES: [ProcessEntry];

/// Finds the entry registered under `key`.
pub(crate) fn find(key: &str) -> Option<&'static ProcessEntry> {
    PROCESS_TYPES.iter().find(|entry| entry.key == key)
}

/// Registers a type that implements [`Process`] by hand, so children can rebuild it.
///
/// `#[skprocess]` does this for you, with exactly this expansion; this is the same without the
/// macro.
#[macro_export]
macro_rules! register {
    ($process:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::PROCESS_TYPES)]
            #[linkme(crate = $crate::__private::linkme)]
            static ENTRY: $crate::__private::ProcessEntry =
                $crate::__private::ProcessEntry::lifecycle::<$process>();
        };
    };
}
