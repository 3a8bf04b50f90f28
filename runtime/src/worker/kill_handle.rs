//! [`WorkerKillHandle`]: the one part of a [`WorkerResource`](crate::WorkerResource) that
//! another thread may hold, to kill its worker while the resource waits in a call.

use std::sync::Arc;

use crate::parent::reaper::ChildProcess;
use crate::transport::Connection;

/// Ends a [`WorkerResource`](crate::WorkerResource)'s worker from any thread, while the
/// resource itself is busy in a call on another one (its calls take `&mut self`). Cloneable;
/// from [`WorkerResource::kill_handle`](crate::WorkerResource::kill_handle).
#[derive(Clone)]
pub struct WorkerKillHandle {
    connection: Arc<Connection>,
    child: Arc<ChildProcess>,
}

impl WorkerKillHandle {
    pub(super) fn new(connection: Arc<Connection>, child: Arc<ChildProcess>) -> Self {
        Self { connection, child }
    }

    /// Kills the worker now (SIGKILL): a call waiting on the resource returns
    /// [`Error::Crashed`](crate::Error::Crashed) naming the signal, as does every later call; the resource's reader
    /// reaps the process. Killing a worker that already ended does nothing.
    pub fn kill(&self) {
        self.child.kill();
        self.connection.shutdown();
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

impl std::fmt::Debug for WorkerKillHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerKillHandle")
            .field("pid", &self.pid())
            .finish()
    }
}
