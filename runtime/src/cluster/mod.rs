//! Beyond one machine: the same maps over many hosts, through a Redis server (feature
//! `cluster`).
//!
//! How the parts fit:
//!
//! - [`Cluster`] (here) is the one handle: a Redis server and a cluster name. The local APIs
//!   take it — [`Pool::on`](crate::Pool::on) — so code moves from one machine to many by
//!   changing one constructor. `link.rs` holds the connection to the server (the password
//!   comes from an environment variable, never from the URL; TLS trusts the system's roots or
//!   a CA file an environment variable names) and the reply shapes read;
//!   `keys.rs` is the key layout, with each key's lifetime.
//! - `hosts.rs`: worker hosts heartbeat with a TTL key; [`Cluster::hosts`] lists the living.
//! - `serve/`: a worker host — the same binary, started with `SKPROCESS_SERVE` (read by
//!   [`init`](crate::init)) or calling [`serve`] — reads batches of items from the cluster's
//!   stream through its build's consumer group, runs them on a local [`Pool`](crate::Pool) of
//!   its cores, writes the results and acknowledges; it claims what dead hosts held.
//! - `pool/`: the caller's side of a map (an engine behind an ordinary `Pool`, so every map
//!   form and modifier is the local one), the formats of entries and results, and the
//!   sans-IO policies: which results count (`collector.rs`) and which pending entries a host
//!   claims or fails (`claim.rs`).
//!
//! - `share/`: [`Share::on`](crate::Share::on), the same `#[shared]` types with each field in a
//!   key of its own: built-in operations as native commands, methods as optimistic
//!   transactions over the fields `SHARED_META` says they read and write.
//!
//! - `queue/`: [`Queue::on`](crate::Queue::on), the same [`Queue`](crate::Queue) handle with
//!   its messages in a stream of the server: read through one consumer group, acknowledged
//!   with `XACK`, taken over from readers that stopped with the pool's claim code.
//!
//! Functions travel as code offsets, valid only in the same build: every entry carries its
//! caller's build identity, and each build reads through a consumer group of its own, so a
//! host of another build never runs (nor takes) an entry it cannot run.

mod hosts;
mod keys;
mod link;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod serve;
pub(crate) mod share;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::Error;

pub use hosts::HostInfo;
pub use keys::{HEARTBEAT, HOST_TTL, JOB_REFRESH, JOB_TTL, QUEUE_TTL, SHARE_TTL};
pub use link::{CA_ENV, PASSWORD_ENV};
pub use queue::DEFAULT_QUEUE;
pub use serve::{SERVE_ENV, SERVE_WORKERS_ENV, ServeConfig, serve};

pub(crate) use keys::Keys;
pub(crate) use link::Server;

/// How a [`Cluster`] handle works. Start from `ClusterConfig::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The environment variable that holds the server's password (the URL must carry
    /// none); unset means no password.
    ///
    /// Default: [`PASSWORD_ENV`].
    pub password_env: String,
    /// The environment variable that holds the path of a PEM file of the certificate
    /// authorities to trust for a `rediss://` server, in place of the system's roots (which
    /// honour `SSL_CERT_FILE`); unset or empty means the system's roots. For a server whose
    /// certificate a private CA signed. Only the variable's name travels to other processes;
    /// each reads the file itself when it makes its handle, so the path may differ per
    /// machine. Ignored for `redis://` urls.
    ///
    /// Default: [`CA_ENV`].
    pub ca_env: String,
    /// How many times an entry of items may be delivered to a host (the first run and each
    /// claim after a host stopped); past that its unfinished items fail with
    /// [`Error::Cluster`] naming the last host.
    ///
    /// Default: 3.
    pub attempts: u32,
    /// How long a map waits with items outstanding while no host of this build is alive
    /// before they fail with [`Error::NoWorker`].
    ///
    /// Default: 60 s.
    pub no_host_timeout: Duration,
    /// How long the server may be unreachable during a map before its outstanding items
    /// fail with [`Error::Cluster`].
    ///
    /// Default: 10 s.
    pub server_timeout: Duration,
    /// Largest encoded item; a larger one fails with [`Error::TooLarge`].
    ///
    /// Default: 16 MiB.
    pub max_item_bytes: usize,
    /// Most items of one map in flight.
    ///
    /// Default: 16384.
    pub max_in_flight: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            password_env: PASSWORD_ENV.to_owned(),
            ca_env: CA_ENV.to_owned(),
            attempts: 3,
            no_host_timeout: Duration::from_secs(60),
            server_timeout: Duration::from_secs(10),
            max_item_bytes: 16 << 20,
            max_in_flight: 16384,
        }
    }
}

impl ClusterConfig {
    /// Sets [`password_env`](ClusterConfig::password_env).
    pub fn password_env(mut self, variable: impl Into<String>) -> Self {
        self.password_env = variable.into();
        self
    }

    /// Sets [`ca_env`](ClusterConfig::ca_env).
    pub fn ca_env(mut self, variable: impl Into<String>) -> Self {
        self.ca_env = variable.into();
        self
    }

    /// Sets [`attempts`](ClusterConfig::attempts) (at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets [`no_host_timeout`](ClusterConfig::no_host_timeout).
    pub fn no_host_timeout(mut self, limit: Duration) -> Self {
        self.no_host_timeout = limit;
        self
    }

    /// Sets [`server_timeout`](ClusterConfig::server_timeout).
    pub fn server_timeout(mut self, limit: Duration) -> Self {
        self.server_timeout = limit;
        self
    }
}

/// A cluster: a Redis server and a name, shared by a caller and its worker hosts.
///
/// ```no_run
/// # fn main() -> Result<(), skprocess_runtime::Error> {
/// use skprocess_runtime::{Pool, cluster::Cluster};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let cluster = Cluster::redis("redis://127.0.0.1:6379/0", "squares")?;
/// let pool = Pool::on(&cluster)?;   // hosts serving `squares` run the items
/// assert_eq!(pool.map(square, 1..=4)?, [1, 4, 9, 16]);
/// # Ok(()) }
/// ```
///
/// Hosts are this same executable, started with
/// `SKPROCESS_SERVE=redis://127.0.0.1:6379/0/squares` (or calling [`serve`]). Cloning the
/// handle shares it.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    name: String,
    keys: Keys,
    config: ClusterConfig,
    /// One connection for short commands, made again after it broke.
    connection: Mutex<Option<redis::Connection>>,
}

impl Cluster {
    /// The cluster `name` on the Redis server at `url` (`redis://host:port/db`, or
    /// `rediss://` for TLS — see [`ClusterConfig::ca_env`]; no password: see
    /// [`ClusterConfig::password_env`]); checks that the server answers.
    pub fn redis(url: &str, name: &str) -> Result<Self, Error> {
        Self::redis_with(url, name, ClusterConfig::default())
    }

    /// [`redis`](Cluster::redis) with a configuration.
    pub fn redis_with(url: &str, name: &str, config: ClusterConfig) -> Result<Self, Error> {
        keys::check_name(name).map_err(|problem| Error::Config { problem })?;
        let server = Server::parse(url, &config.password_env, &config.ca_env)?;
        let cluster = Self {
            inner: Arc::new(Inner {
                server,
                name: name.to_owned(),
                keys: Keys::new(name),
                config,
                connection: Mutex::new(None),
            }),
        };
        cluster.with_connection(|c| redis::cmd("PING").query::<()>(c))?;
        Ok(cluster)
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The worker hosts alive now (of every build), with their build, cores, load and last
    /// heartbeat.
    pub fn hosts(&self) -> Result<Vec<HostInfo>, Error> {
        let keys = self.inner.keys.clone();
        self.with_connection(|c| hosts::list(c, &keys))
    }

    pub(crate) fn server(&self) -> &Server {
        &self.inner.server
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Runs `command` on the handle's connection, connecting first when there is none; a
    /// connection that failed is dropped, so the next command connects again. For short
    /// commands; a feature with blocking reads opens its own (`server().connect`).
    pub(crate) fn with_connection<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut slot = self
            .inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => slot.insert(self.inner.server.connect(link::COMMAND_TIMEOUT)?),
        };
        command(connection).map_err(|e| {
            *slot = None;
            self.inner.server.error(&e)
        })
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.inner.server.address())
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}
