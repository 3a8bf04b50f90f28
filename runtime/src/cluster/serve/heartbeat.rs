//! A host's heartbeat: every [`HEARTBEAT`] it writes the host key (with its TTL), touches the
//! entries it holds so they never look abandoned, and claims the entries hosts that stopped
//! left (the policy is `cluster/pool/claim.rs`).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Instant;

use redis::{Connection, RedisResult};

use crate::cluster::hosts::{self, HostInfo};
use crate::cluster::keys::{HEARTBEAT, HOST_TTL};
use crate::cluster::link::{self, COMMAND_TIMEOUT};
use crate::cluster::pool::claim;
use crate::cluster::serve::{Claim, Host};
use crate::error::Error;

/// Most pending entries looked at per beat.
const CLAIM_BATCH: usize = 16;

/// Beats until the process ends.
pub(crate) fn run(host: &Host) -> Result<Infallible, Error> {
    let started = std::process::id();
    let mut connection: Option<Connection> = None;
    let mut reported = false;
    loop {
        let next = Instant::now() + HEARTBEAT;
        let beat = match connection.as_mut() {
            Some(connection) => beat(host, connection, started),
            None => match host.server.connect(COMMAND_TIMEOUT) {
                Ok(mut fresh) => {
                    let beat = link::ensure_group(&mut fresh, &host.keys.items(), &host.group)
                        .map_err(|e| host.server.error(&e))
                        .and_then(|()| beat(host, &mut fresh, started));
                    connection = Some(fresh);
                    beat
                }
                Err(e) => Err(e),
            },
        };
        match beat {
            Ok(()) => reported = false,
            Err(error) => {
                if !reported {
                    host.warn(&format!("heartbeat failed: {error}"));
                    reported = true;
                }
                connection = None;
            }
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// One beat: the host key, the touch, the claims.
fn beat(host: &Host, connection: &mut Connection, pid: u32) -> Result<(), Error> {
    let held = host.held();
    let info = HostInfo {
        id: host.id.clone(),
        build: host.build.clone(),
        cores: host.pool.workers(),
        load: held.len(),
        last_heartbeat_ms: hosts::now_ms(),
        pid,
    };
    let result = hosts::beat(connection, &host.keys, &info)
        .and_then(|()| touch(host, connection, &held))
        .and_then(|()| claim_stale(host, connection));
    match result {
        Err(e) if link::is_no_group(&e) => {
            link::ensure_group(connection, &host.keys.items(), &host.group)
                .map_err(|e| host.server.error(&e))
        }
        other => other.map_err(|e| host.server.error(&e)),
    }
}

/// Resets the idle time of the entries this host holds, without counting a delivery.
fn touch(host: &Host, connection: &mut Connection, held: &[String]) -> RedisResult<()> {
    link::touch(connection, &host.keys.items(), &host.group, &host.id, held)
}

/// Claims entries idle past the host TTL, while the slots have room for them.
fn claim_stale(host: &Host, connection: &mut Connection) -> RedisResult<()> {
    let room = host
        .slots
        .saturating_sub(host.queued_claims.load(Ordering::SeqCst));
    if room == 0 {
        return Ok(());
    }
    let items = host.keys.items();
    let pending = link::pending_idle(connection, &items, &host.group, HOST_TTL, CLAIM_BATCH)?;
    let holds = |id: &str| host.holds(id);
    for row in claim::to_claim(&pending, &holds, HOST_TTL)
        .into_iter()
        .take(room)
    {
        let claimed = link::claim(connection, &items, &host.group, &host.id, HOST_TTL, &row.id)?;
        for entry in claimed {
            if !host.hold(&entry.id) {
                continue;
            }
            tracing::info!(host = %host.id, entry = %entry.id, from = %row.consumer, "claimed an entry of a host that stopped");
            host.queued_claims.fetch_add(1, Ordering::SeqCst);
            host.queue_claim(Claim {
                entry,
                previous: row.consumer.clone(),
                idle: row.idle,
                deliveries: row.deliveries.saturating_add(1),
            });
        }
    }
    Ok(())
}
