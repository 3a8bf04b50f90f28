//! The distributed pool: the same [`Pool`] and the same maps, run by the hosts of a cluster.
//!
//! How the parts fit: [`Pool::on`] makes an ordinary [`Pool`] whose map calls are served by
//! the cluster's engine (`caller.rs`, through [`Pool::with_engine`]), so every map form, the
//! bounded in-flight window, the reordering, `star`, `timeout`, `background`, `asynced`,
//! `progress` and `map_processes` are the local code. The engine turns each batch of items a
//! map hands it into entries of the cluster's stream (`wire.rs`: the caller's build, the job,
//! the task and the items); a collector thread per map (`results.rs`) pops the result batches
//! hosts push, keeps the first outcome of each item (`collector.rs`, sans-IO), refreshes the
//! map's key and fails what no host can run any more. The host side is `cluster/serve/`;
//! which pending entries a host claims, and when an entry's attempts are spent, is
//! `claim.rs` (sans-IO).

mod caller;
pub(crate) mod claim;
mod collector;
mod results;
pub(crate) mod wire;

use crate::cluster::{Cluster, hosts};
use crate::error::Error;
use crate::pool::Pool;
use crate::pool::raw::EngineShape;

impl Pool {
    /// A pool whose items run on the worker hosts of `cluster`: the same maps, modifiers and
    /// errors as a local pool.
    ///
    /// Items travel in batches as entries of the cluster's Redis stream; each host of this
    /// build takes entries as its local workers free up, and the results come back by
    /// index. A host that stops (killed, cut off, wedged) has its entries taken over by the
    /// others within [`HOST_TTL`](crate::cluster::HOST_TTL); an entry delivered more than
    /// [`ClusterConfig::attempts`](crate::cluster::ClusterConfig::attempts) times fails its
    /// unfinished items with [`Error::Crashed`] naming the host. Items are never lost and
    /// each is delivered to the map once, but an item may *run* more than once (a host that
    /// was only slow finishes what another took over): make items idempotent.
    ///
    /// [`workers`](Pool::workers) is the number of workers of this build's hosts alive now
    /// (at least 1); it sizes the window.
    pub fn on(cluster: &Cluster) -> Result<Pool, Error> {
        let same_build: usize = cluster
            .hosts()?
            .iter()
            .filter(|host| host.is_same_build())
            .map(|host| host.cores)
            .sum();
        let workers = same_build.max(1);
        let config = cluster.config();
        let shape = EngineShape {
            workers,
            item_limit: config.max_item_bytes,
            max_in_flight: config.max_in_flight,
        };
        let engine = caller::Engine::new(cluster.clone(), hosts::link_build(), workers);
        Pool::with_engine(shape, "skprocess-cluster", move |events| {
            engine.run(&events)
        })
    }
}
