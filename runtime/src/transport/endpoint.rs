//! Where a long-lived [`Server`](super::server::Server) listens, and its accept thread. The
//! owner hands out an [`Endpoint`] (address and token, which travel inside serialized
//! handles); whoever presents it gets an authenticated connection, passed to the server's
//! admission on the accept thread.
//!
//! Unlike a spawn's rendezvous, a server accepts any number of connections from any process
//! (the peer's pid, as the kernel gives it, is handed to the admission). The socket and its private
//! directory are removed when the accept thread is stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::transport::connection::Connection;
use crate::transport::error::TransportError;
use crate::transport::rendezvous::{self, PeerPid, Rendezvous};

/// How long the accept thread sleeps at a time while idle; stopping it wakes it at
/// once by connecting, so this only bounds how stale a stop request can get.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Where a server listens and the token that proves a connection may use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    pub(crate) address: PathBuf,
    pub(crate) token: String,
}

impl Endpoint {
    /// Opens an authenticated connection to the server, without waiting for its admission
    /// (clients use [`server::connect`](super::server::connect), which does).
    pub(crate) fn connect(&self, max_frame: u32) -> Result<Connection, TransportError> {
        rendezvous::connect(&self.address, &self.token, max_frame)
    }
}

/// A running accept thread. Dropping it stops accepting; connections already handed on live
/// on.
pub(super) struct Accepting {
    endpoint: Endpoint,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Accepting {
    /// Binds a private socket (in `socket_dir`, default the temp directory) and starts a
    /// thread named `name` that passes each authenticated connection to `on_connection`, and
    /// calls `on_wake` each time it wakes (at least every half second), for a server's
    /// periodic checks.
    pub(super) fn start(
        name: &str,
        max_frame: u32,
        socket_dir: Option<&Path>,
        on_connection: impl FnMut(Connection, PeerPid) + Send + 'static,
        on_wake: impl FnMut() + Send + 'static,
    ) -> Result<Self, TransportError> {
        let rendezvous = Rendezvous::bind(socket_dir)?.with_idle_wait(IDLE_WAIT);
        let endpoint = Endpoint {
            address: rendezvous.address().to_owned(),
            token: rendezvous::random_hex(16)?,
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = AcceptLoop {
            rendezvous,
            token: endpoint.token.clone(),
            max_frame,
            stopping: Arc::clone(&stopping),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || accept.run(on_connection, on_wake))?;
        Ok(Self {
            endpoint,
            stopping,
            thread: Some(thread),
        })
    }

    /// What a client needs to connect.
    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread now rather than after its idle wait.
        let _ = rendezvous::connect_stream(&self.endpoint.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct AcceptLoop {
    rendezvous: Rendezvous,
    token: String,
    max_frame: u32,
    stopping: Arc<AtomicBool>,
}

impl AcceptLoop {
    fn run(
        mut self,
        mut on_connection: impl FnMut(Connection, PeerPid),
        mut on_wake: impl FnMut(),
    ) {
        while !self.stopping.load(Ordering::SeqCst) {
            let stopping = &self.stopping;
            let abandon = || {
                on_wake();
                stopping
                    .load(Ordering::SeqCst)
                    .then_some(TransportError::Disconnected)
            };
            match self
                .rendezvous
                .accept(&self.token, self.max_frame, None, abandon)
            {
                Ok((connection, pid)) => on_connection(connection, pid),
                Err(_) if self.stopping.load(Ordering::SeqCst) => return,
                // An accept error (too many open files, say) is not the end of the server:
                // back off briefly and keep serving.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const LIMIT: u32 = 64 * 1024;
    const BOUND: Duration = Duration::from_secs(10);

    #[test]
    fn serves_many_connections_and_rejects_a_wrong_token() {
        let (sender, received) = mpsc::channel();
        let accepting = Accepting::start(
            "test-accept",
            LIMIT,
            None,
            move |connection, pid| {
                let _ = sender.send((connection, pid));
            },
            || {},
        )
        .unwrap();
        let endpoint = accepting.endpoint().clone();
        let forged = Endpoint {
            token: "0".repeat(32),
            ..endpoint.clone()
        };
        let _rejected = forged.connect(LIMIT).unwrap();
        for _ in 0..3 {
            let _connection = endpoint.connect(LIMIT).unwrap();
            let (_, pid) = received.recv_timeout(BOUND).unwrap();
            assert_eq!(pid, Some(std::process::id()));
        }
        assert!(received.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn dropping_stops_promptly_and_removes_the_socket() {
        let (sender, received) = mpsc::channel();
        let accepting = Accepting::start(
            "test-accept",
            LIMIT,
            None,
            move |_, _| {
                let _ = sender.send(());
            },
            || {},
        )
        .unwrap();
        let address = accepting.endpoint().address.clone();
        // One served connection shows the accept thread is in its loop, about to wait idle.
        let _connection = accepting.endpoint().connect(LIMIT).unwrap();
        received.recv_timeout(BOUND).unwrap();
        drop(accepting);
        assert!(!address.exists());
        assert!(rendezvous::connect_stream(&address).is_err());
    }
}
