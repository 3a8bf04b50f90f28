//! A worker host: this same binary, serving a cluster instead of running `main`.
//!
//! How the parts fit: [`serve`] (or `SKPROCESS_SERVE`, read by [`init`](crate::init)) starts
//! a local [`Pool`] of the machine's cores and a [`Host`] that the threads share. Slot threads
//! (`slot.rs`, [`ServeConfig::slots`] of them, each with its own connection) take one entry
//! at a time — first one the heartbeat claimed, else a new one with `XREADGROUP` through this
//! build's consumer group — and run it (`entry.rs`): check the build and that the map still
//! has a caller, feed the items to the local pool, push the results as they come, and
//! acknowledge and delete the entry with the last push. The calling thread becomes the
//! heartbeat (`heartbeat.rs`): every [`HEARTBEAT`](super::HEARTBEAT) it writes the host key,
//! touches the entries the slots hold, and claims entries that stopped hosts left
//! (`cluster/pool/claim.rs` decides). A broken link costs the entries being run (the slots
//! give them up, and they are claimed later, by this host or another) and nothing else: every
//! thread connects again with a growing pause.

mod entry;
mod heartbeat;
mod slot;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use crate::cluster::keys::{self, Keys};
use crate::cluster::link::{CA_ENV, PASSWORD_ENV, Server, StreamEntry};
use crate::error::Error;
use crate::pool::Pool;

/// The environment variable that makes [`init`](crate::init) serve a cluster instead of
/// returning: `redis://host:port/db/name` (the cluster's server URL, then its name).
pub const SERVE_ENV: &str = "SKPROCESS_SERVE";

/// The environment variable with the number of local workers of a host started by
/// [`SERVE_ENV`]; unset or 0 means one per core.
pub const SERVE_WORKERS_ENV: &str = "SKPROCESS_SERVE_WORKERS";

/// How a host serves. Start from `ServeConfig::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Local workers; 0 means one per core.
    ///
    /// Default: 0.
    pub workers: usize,
    /// Entries run at once (each on the same local pool), so the next one is already there
    /// when one finishes.
    ///
    /// Default: 2.
    pub slots: usize,
    /// The environment variable that holds the server's password.
    ///
    /// Default: [`PASSWORD_ENV`](crate::cluster::PASSWORD_ENV).
    pub password_env: String,
    /// The environment variable that holds the path of a PEM file of the certificate
    /// authorities to trust for a `rediss://` server instead of the system's.
    ///
    /// Default: [`CA_ENV`](crate::cluster::CA_ENV).
    pub ca_env: String,
    /// The host's name, the start of its id; `None` means the machine's host name.
    ///
    /// Default: `None`.
    pub name: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            slots: 2,
            password_env: PASSWORD_ENV.to_owned(),
            ca_env: CA_ENV.to_owned(),
            name: None,
        }
    }
}

impl ServeConfig {
    /// Sets [`workers`](ServeConfig::workers).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets [`name`](ServeConfig::name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Serves the cluster at `target`, `redis://host:port/db/name` (the server's URL without a
/// password, then the cluster's name), until the process ends; returns only when it cannot
/// start (a bad target, no local worker).
///
/// A host runs the items of callers of its own build only. Entries of another build are
/// left to their own hosts, and the host warns once per build it meets. It survives its
/// server going away and coming back.
pub fn serve(target: &str, config: &ServeConfig) -> Result<Infallible, Error> {
    let (url, name) = split_target(target)?;
    let server = Server::parse(url, &config.password_env, &config.ca_env)?;
    let pool = Pool::new(config.workers)?;
    let host = Arc::new(Host::new(server, name, pool, config)?);
    for slot in 0..config.slots.max(1) {
        let host = Arc::clone(&host);
        std::thread::Builder::new()
            .name(format!("skprocess-serve-{slot}"))
            .spawn(move || slot::run(&host))?;
    }
    heartbeat::run(&host)
}

/// In a process started with [`SERVE_ENV`], serves and never returns (the exit code when it
/// cannot start); otherwise returns at once.
pub(crate) fn serve_from_env() -> Option<i32> {
    let target = std::env::var(SERVE_ENV).ok()?;
    let workers = std::env::var(SERVE_WORKERS_ENV)
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    // SAFETY: this runs first thing in `main` (or in the hidden test entry while libtest's
    // own threads only wait for it), before this process starts any thread of its own; the
    // local workers it spawns must not serve too.
    unsafe { std::env::remove_var(SERVE_ENV) };
    let config = ServeConfig::default().workers(workers);
    let Err(error) = serve(&target, &config);
    eprintln!("skprocess: cannot serve {target}: {error}");
    Some(2)
}

/// The server URL and the cluster name of a serve target.
fn split_target(target: &str) -> Result<(&str, &str), Error> {
    let bad = || Error::Config {
        problem: format!(
            "{target:?} is not a serve target: expected redis://host:port/db/name (or rediss://)"
        ),
    };
    let (url, name) = target.rsplit_once('/').ok_or_else(bad)?;
    if !url.contains("://") || url.ends_with('/') || url.ends_with(':') {
        return Err(bad());
    }
    keys::check_name(name).map_err(|problem| Error::Config { problem })?;
    Ok((url, name))
}

/// An entry the heartbeat claimed, for a slot to run.
pub(crate) struct Claim {
    pub(crate) entry: StreamEntry,
    /// The host that held it last.
    pub(crate) previous: String,
    pub(crate) idle: std::time::Duration,
    /// Its deliveries, this one counted.
    pub(crate) deliveries: u64,
}

/// What a host's threads share.
pub(crate) struct Host {
    pub(crate) id: String,
    pub(crate) server: Server,
    pub(crate) keys: Keys,
    pub(crate) build: String,
    pub(crate) group: String,
    pub(crate) pool: Pool,
    pub(crate) slots: usize,
    /// Entries this host holds now: running in a slot, or claimed and waiting for one.
    running: Mutex<BTreeSet<String>>,
    claims_in: Mutex<Sender<Claim>>,
    claims: Mutex<Receiver<Claim>>,
    /// Claims waiting for a slot.
    pub(crate) queued_claims: AtomicUsize,
    /// Builds of entries this host met and cannot run (each reported once).
    foreign: Mutex<BTreeSet<String>>,
}

impl Host {
    fn new(server: Server, cluster: &str, pool: Pool, config: &ServeConfig) -> Result<Self, Error> {
        let build = super::hosts::link_build();
        let (claims_in, claims) = mpsc::channel();
        Ok(Self {
            id: host_id(config.name.as_deref())?,
            server,
            keys: Keys::new(cluster),
            group: keys::group(&build),
            build,
            pool,
            slots: config.slots.max(1),
            running: Mutex::new(BTreeSet::new()),
            claims_in: Mutex::new(claims_in),
            claims: Mutex::new(claims),
            queued_claims: AtomicUsize::new(0),
            foreign: Mutex::new(BTreeSet::new()),
        })
    }

    /// Marks `id` as held by this host (`false` when it already was).
    pub(crate) fn hold(&self, id: &str) -> bool {
        lock(&self.running).insert(id.to_owned())
    }

    /// Marks `id` as no longer held: finished, or given up.
    pub(crate) fn release(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    /// Whether this host holds `id`.
    pub(crate) fn holds(&self, id: &str) -> bool {
        lock(&self.running).contains(id)
    }

    /// The entries held now.
    pub(crate) fn held(&self) -> Vec<String> {
        lock(&self.running).iter().cloned().collect()
    }

    pub(crate) fn queue_claim(&self, claim: Claim) {
        let _ = lock(&self.claims_in).send(claim);
    }

    pub(crate) fn next_claim(&self) -> Option<Claim> {
        lock(&self.claims).try_recv().ok()
    }

    /// Reports, once per build, that entries of `build` reach this host and are left alone.
    pub(crate) fn met_foreign(&self, build: &str) {
        if lock(&self.foreign).insert(build.to_owned()) {
            self.warn(&format!(
                "entries of another build ({build}) reach this host (build {}); they are left to hosts of their build",
                self.build
            ));
        }
    }

    /// Reports a problem: to the `tracing` subscriber when one is installed, else on stderr
    /// (a host is a process of its own, often with nothing else to tell).
    pub(crate) fn warn(&self, message: &str) {
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(host = %self.id, "{message}");
        } else {
            eprintln!("skprocess host {}: {message}", self.id);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A host id: its name, process id and a random suffix.
fn host_id(name: Option<&str>) -> Result<String, Error> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => machine_name(),
    };
    let mut random = [0u8; 3];
    let suffix = match getrandom::fill(&mut random) {
        Ok(()) => keys::build_hex(&random),
        Err(_) => "0".into(),
    };
    let id = format!("{name}-{}-{suffix}", std::process::id());
    keys::check_name(&id).map_err(|problem| Error::Config { problem })?;
    Ok(id)
}

/// The machine's host name, cut to the characters a key takes.
fn machine_name() -> String {
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    if name.is_empty() { "host".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_url_then_a_name() {
        assert_eq!(
            split_target("redis://10.0.0.1:6379/0/thumbs").unwrap(),
            ("redis://10.0.0.1:6379/0", "thumbs")
        );
        for bad in ["thumbs", "redis://h:1/0/", "redis://h:1/0/a:b", "redis:/x"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_host_id_fits_in_a_key() {
        let id = host_id(Some("box")).unwrap();
        assert!(
            id.starts_with(&format!("box-{}-", std::process::id())),
            "{id}"
        );
        assert!(keys::check_name(&host_id(None).unwrap()).is_ok());
    }
}
