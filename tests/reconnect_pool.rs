//! A process type run as a pool item reopens its live fields in the worker, before its first
//! hook, like a child does.

use std::path::PathBuf;

use rusqlite::Connection;
use skprocess::prelude::*;
use skprocess::reconnect::SqliteRecipe;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Records its id and the worker's pid in the database.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Insert {
    db: Live<Connection>,
    id: u32,
}

#[skprocess]
impl Insert {
    fn run(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.db.get()?.execute(
            "INSERT INTO items (id, pid) VALUES (?1, ?2)",
            (self.id, std::process::id()),
        )?;
        Ok(())
    }

    fn result(&mut self) -> u32 {
        std::process::id()
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skp-pool-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pool_items_reopen_their_live_connections_in_the_workers() {
    let _bound = bound::within(TEST_BOUND);
    let dir = scratch();
    let path = dir.join("items.db");
    let setup = Connection::open(&path).unwrap();
    setup
        .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE items (id INTEGER, pid INTEGER)")
        .unwrap();
    let pool = Pool::new(2).unwrap();
    let items = (0..6).map(|id| Insert {
        db: Live::deferred(SqliteRecipe::file(&path)),
        id,
    });
    let pids = pool.map_processes(items).unwrap();
    assert!(pids.iter().all(|pid| *pid != std::process::id()));
    let stored: Vec<(u32, u32)> = setup
        .prepare("SELECT id, pid FROM items ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ids: Vec<u32> = stored.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    // Each row was written by the worker that ran the item.
    let by_item: Vec<u32> = stored.iter().map(|(_, pid)| *pid).collect();
    assert_eq!(by_item, pids);
    drop(setup);
    std::fs::remove_dir_all(&dir).unwrap();
}
