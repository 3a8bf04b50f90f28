//! The child's runtime context: what any code running in a child — a hook, or a handle that
//! was deserialized with the process state (a shared value, a pipe end, a live resource) — can
//! learn about the child it runs in, and use to open its own connections.
//!
//! Such handles connect lazily, on first use. A restart after a crash is a new process with a
//! new context, so a handle rebuilt there connects again on its first use there.

use std::path::Path;
use std::sync::OnceLock;

use crate::error::Error;
use crate::protocol::Role;
use crate::protocol::lifecycle::Resume;
use crate::transport::{Connection, rendezvous};

static CURRENT: OnceLock<ChildContext> = OnceLock::new();

/// What a child knows about itself. Get it with [`ChildContext::current`].
#[derive(Debug)]
pub struct ChildContext {
    role: Role,
    key: String,
    completed_runs: u64,
    parent_pid: u32,
}

impl ChildContext {
    pub(crate) fn new(role: Role, key: &str, resume: &Resume) -> Self {
        Self {
            role,
            key: key.to_owned(),
            completed_runs: resume.completed_runs,
            parent_pid: crate::sys::parent_pid(),
        }
    }

    /// The context of this process when it is a skprocess child; `None` in a parent.
    pub fn current() -> Option<&'static ChildContext> {
        CURRENT.get()
    }

    /// The engine this child runs.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The registry key of the process type this child runs.
    pub fn process_key(&self) -> &str {
        &self.key
    }

    /// Iterations completed before this child started: 0 for a first start, the checkpoint's
    /// count for a restart.
    pub fn completed_runs(&self) -> u64 {
        self.completed_runs
    }

    /// The process id of the parent that supervises this child.
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }

    /// Opens an authenticated connection to a rendezvous point of the parent (or any process
    /// that handed out `address` and `token`).
    #[allow(dead_code)]
    pub(crate) fn connect(
        &self,
        address: &Path,
        token: &str,
        max_frame: u32,
    ) -> Result<Connection, Error> {
        Ok(rendezvous::connect(address, token, max_frame)?)
    }
}

/// Installs the context of this child; the first call wins.
pub(crate) fn set(context: ChildContext) {
    let _ = CURRENT.set(context);
}
