//! A slot: a thread of a host that runs one entry at a time on its own connection — a claimed
//! one when the heartbeat left one, else the next new one of this build's consumer group.

use std::time::Duration;

use redis::{Connection, RedisResult, Value};

use crate::cluster::link::{self, COMMAND_TIMEOUT};
use crate::cluster::serve::entry::{self, Delivery};
use crate::cluster::serve::{Claim, Host};

/// How long a read waits for a new entry, so that claimed entries are seen soon.
const READ_BLOCK_MS: u64 = 250;

/// The first and the longest pause after a failure before connecting again.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(100);
pub(crate) const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Runs entries until the process ends.
pub(crate) fn run(host: &Host) {
    let mut connection: Option<Connection> = None;
    let mut pause = FIRST_PAUSE;
    let mut reported = false;
    loop {
        let turn = match connection.as_mut() {
            Some(connection) => turn(host, connection),
            None => match host.server.connect(COMMAND_TIMEOUT) {
                Ok(fresh) => {
                    connection = Some(fresh);
                    continue;
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match turn {
            Ok(()) => {
                pause = FIRST_PAUSE;
                reported = false;
            }
            Err(error) => {
                if !reported {
                    host.warn(&format!(
                        "the cluster's server failed: {error}; connecting again"
                    ));
                    reported = true;
                }
                connection = None;
                std::thread::sleep(pause);
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// Runs one entry, or waits a moment for one.
fn turn(host: &Host, connection: &mut Connection) -> Result<(), String> {
    if let Some(claim) = host.next_claim() {
        host.queued_claims
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let Claim {
            entry,
            previous,
            idle,
            deliveries,
        } = claim;
        let delivery = Delivery::Claimed {
            previous,
            idle,
            deliveries,
        };
        return run_held(host, connection, &entry, &delivery);
    }
    let read = read_new(host, connection);
    let entries = match read {
        Err(e) if link::is_no_group(&e) => {
            return link::ensure_group(connection, &host.keys.items(), &host.group)
                .map_err(|e| e.to_string());
        }
        other => other.map_err(|e| e.to_string())?,
    };
    for entry in entries {
        host.hold(&entry.id);
        run_held(host, connection, &entry, &Delivery::Fresh)?;
    }
    Ok(())
}

/// Runs an entry this host holds, and lets go of it however that ends: finished, or given
/// up after a failure (then another claim takes it).
fn run_held(
    host: &Host,
    connection: &mut Connection,
    entry: &link::StreamEntry,
    delivery: &Delivery,
) -> Result<(), String> {
    let ran = entry::run(host, connection, entry, delivery);
    host.release(&entry.id);
    ran.map_err(|e| e.to_string())
}

/// The next new entry of this build's group, if one comes within the block.
fn read_new(host: &Host, connection: &mut Connection) -> RedisResult<Vec<link::StreamEntry>> {
    let items = host.keys.items();
    let reply: Value =
        link::read_group(&items, &host.group, &host.id, 1, READ_BLOCK_MS).query(connection)?;
    Ok(link::read_group_entries(&reply))
}
