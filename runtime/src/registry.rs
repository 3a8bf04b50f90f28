//! The registry of process types, filled at link time by `#[skprocess]` (or [`register!`]).
//!
//! Entries live in a distributed slice that the linker assembles: complete before `main`, with
//! no constructors, whichever crate or module a type is defined in.

use std::sync::Arc;

use crate::child::bootstrap::Started;
use crate::child::engine::{self, Ended};
use crate::child::link::ChildLink;
use crate::child::pool_item::ItemHost;
use crate::error::Failure;
use crate::process::Process;
use crate::protocol::Role;

/// One registered process type: its stable key, its role and the function that runs it in a
/// child.
pub struct ProcessEntry {
    key: &'static str,
    role: Role,
    pub(crate) run_child: fn(ChildLink, Started) -> Ended,
    /// Runs one encoded state's whole lifecycle in this process, as a pool item.
    pub(crate) run_in_pool: RunInPool,
}

/// Runs one encoded state's lifecycle in this process, as a pool item that already spent
/// some of its lives, reporting to its worker; returns its encoded output.
pub(crate) type RunInPool = fn(&[u8], u32, Arc<dyn ItemHost>) -> Result<Vec<u8>, Failure>;

impl ProcessEntry {
    /// The entry of a `#[skprocess]` type, run by the lifecycle engine and keyed by
    /// [`Process::KEY`].
    pub const fn lifecycle<P: Process>() -> Self {
        Self {
            key: P::KEY,
            role: Role::Lifecycle,
            run_child: engine::run_child::<P>,
            run_in_pool: engine::run_in_pool::<P>,
        }
    }

    /// The entry's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The type's registry key.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn key(&self) -> &'static str {
        self.key
    }
}

/// Every registered process type of this binary.
#[linkme::distributed_slice]
pub static PROCESS_TYPES: [ProcessEntry];

/// Whether no process type at all is registered: with `#[skprocess]` types in the binary,
/// the linker dropped the registry (see [`Error::EmptyRegistry`](crate::Error::EmptyRegistry)).
pub(crate) fn is_empty() -> bool {
    PROCESS_TYPES.is_empty()
}

/// Finds the entry registered under `key`.
pub(crate) fn find(key: &str) -> Option<&'static ProcessEntry> {
    PROCESS_TYPES.iter().find(|entry| entry.key == key)
}

/// Registers a type that implements [`Process`] by hand, so children can rebuild it.
///
/// `#[skprocess]` does this for you; this is the same without the macro.
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
