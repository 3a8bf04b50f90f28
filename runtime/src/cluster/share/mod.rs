//! A share whose value lives on the cluster's Redis server: the same `#[shared]` types, the
//! same [`Share`] handle and proxies, reachable from any host.
//!
//! How the parts fit:
//!
//! - Here: [`Share::on`] writes the value, one key per field (`keys.rs` has the layout), and
//!   returns a handle whose [`Link`] goes to a [`backend::Redis`] instead of a coordinator
//!   thread; [`Remote`] is what a handle carries to another process (the server's URL, the
//!   variable holding its password — never the password — the cluster and the share), and
//!   [`link_to`] makes the backend there, one per process and share. The creating process
//!   keeps the keys alive ([`Keeper`]: a thread refreshing their TTL) and deletes them with
//!   its last handle.
//! - `backend.rs`: the `Backend` of the local share's seam: which operations go to native
//!   commands and which to a transaction, the one connection of a process and share, and how
//!   failures are reported (a write's at the next call, like the local share).
//! - `store.rs`: a field's commands by its [`Layout`](crate::share::Layout) kind — reading and
//!   writing it whole, and the built-in operations that are one native command (`INCRBY`,
//!   `INCRBYFLOAT`, `APPEND`, `RPUSH`, `LPOP`, `HSET`, `SADD`, …).
//! - `txn.rs`: everything else — `#[shared]` methods, operations with no native command,
//!   replacing the whole value — as an optimistic transaction: `WATCH` the fields the
//!   operation reads (from `SHARED_META`), read those fields (the others as this process last
//!   saw them), apply it here with the local share's own code, and `MULTI`/`EXEC` the fields
//!   it writes; a conflict runs it again (a call a bounded number of times, a write until it
//!   gets through or a minute passed), a failure or a panic sends nothing, so it changes
//!   nothing.
//!
//! **Ordering.** Every operation, writes included, returns once the server applied it, so a
//! read (which reads the server) observes every write whose call returned before it, from any
//! process. Unlike the local share, a write costs a round trip to the server.

mod backend;
mod failure;
pub(crate) mod links;
pub(crate) mod remote;
mod store;
mod txn;

use links::register;
use remote::Remote;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use crate::cluster::keys::{JOB_REFRESH, SHARE_TTL};
use crate::cluster::link::COMMAND_TIMEOUT;
use crate::cluster::{Cluster, Server};
use crate::error::Error;
use crate::share::coordinator::Control;
use crate::share::handle::Place;
use crate::share::link::HeldWrites;
use crate::share::{Share, Shared};

impl<T: Shared> Share<T> {
    /// Shares `value` through the Redis server of `cluster`: the same handle, proxies and
    /// methods as [`Share::new`], with the value kept on the server, one key per field.
    ///
    /// Built-in field operations are native commands where the server has one (`+=` on an
    /// `i64`/`u64` is `INCRBY`, on a float `INCRBYFLOAT`; `push` is `RPUSH`, a map's `insert`
    /// is `HSET`, a set's `SADD`, …); a `#[shared]` method, and an operation without a native
    /// command, runs here as an optimistic transaction over the fields its `SHARED_META` says
    /// it reads and writes (fetching only the fields it reads), run again on conflict: a call
    /// 64 times at most, then an [`Error::Shared`] saying so; a write (a method returning
    /// `()`, which nobody waits for) until the other writers let it through, for up to a
    /// minute — past that it is lost, and the next call of this process reports it (or, if no
    /// call comes, a warning in the log when the process's last handle goes). A method that
    /// fails or panics changes nothing.
    ///
    /// Every operation returns once the server applied it, so a read observes every write
    /// that returned before it, on any host. The keys live while this process holds a handle
    /// and [`SHARE_TTL`] longer; `stop`/`start` do not apply (nothing is queued).
    ///
    /// `u64`/`usize` fields hold values up to `i64::MAX` on the server (a larger one fails
    /// like an overflow). `T`'s serde encoding must be its fields in order (a plain derive;
    /// no skipped fields), which is checked here.
    pub fn on(cluster: &Cluster, value: T) -> Result<Self, Error> {
        let remote = Remote::new(
            cluster.server().url().to_owned(),
            cluster.server().password_env().to_owned(),
            cluster.server().ca_env().to_owned(),
            cluster.name().to_owned(),
            new_id()?,
        );
        let backend = Arc::new(backend::Redis::<T>::new(&remote)?);
        backend.create(&value)?;
        let keeper = Keeper::start(cluster.server().clone(), backend.all_keys());
        let link = register(&remote, backend);
        Ok(Self::with_place(
            link,
            Place::Cluster(remote),
            Some(Arc::new(keeper)),
        ))
    }
}

/// A fresh share id: 16 random hex digits.
fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Cluster {
        problem: format!("no randomness for a share id: {e}"),
    })?;
    Ok(crate::cluster::keys::build_hex(&bytes))
}

/// The creating process's hold on a share's keys: a thread refreshes their TTL every
/// [`JOB_REFRESH`]; the last handle here stops it and deletes them.
struct Keeper {
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    running: Arc<AtomicBool>,
}

impl Keeper {
    fn start(server: Server, keys: Vec<String>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("skprocess-share-keeper".to_owned())
            .spawn(move || {
                let ttl = u64::try_from(SHARE_TTL.as_millis()).unwrap_or(u64::MAX);
                let mut connection = None;
                loop {
                    let finished = match stopped.recv_timeout(JOB_REFRESH) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    if connection.is_none() {
                        connection = server.connect(COMMAND_TIMEOUT).ok();
                    }
                    let Some(c) = connection.as_mut() else {
                        if finished {
                            return;
                        }
                        continue;
                    };
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        if finished {
                            pipe.cmd("DEL").arg(key).ignore();
                        } else {
                            pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
                        }
                    }
                    if pipe.query::<()>(c).is_err() {
                        connection = None;
                    }
                    if finished {
                        return;
                    }
                }
            })
            .ok();
        Self {
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(thread),
            running: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Control for Keeper {
    fn start(&self) -> Result<(), Error> {
        Err(not_stoppable())
    }

    fn stop(&self) -> Result<(), Error> {
        Err(not_stoppable())
    }

    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn running_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.running)
    }

    fn held_writes(&self) -> HeldWrites {
        HeldWrites::default()
    }

    fn recorded_error(&self) -> Option<String> {
        None
    }
}

fn not_stoppable() -> Error {
    Error::Shared {
        message: "a share on a cluster has no coordinator to pause or resume: every write is applied before it returns".into(),
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        drop(
            self.stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}
