//! SQLite (rusqlite, with SQLite compiled in): a file database reopens by path. An in-memory
//! database is refused with a clear error when the `Live` is made: its data lives in one
//! process and cannot follow it.

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::reconnect::{Reconnect, ReconnectError, Secret, open_error};

/// How to open a `rusqlite::Connection` again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqliteRecipe {
    /// The database file; make it absolute if the child may run elsewhere.
    pub path: PathBuf,
    /// Open read-only.
    pub read_only: bool,
}

impl SqliteRecipe {
    /// Read and write, created if missing.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read_only: false,
        }
    }

    /// Read-only; the file must exist.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read_only: true,
        }
    }

    fn is_in_memory(&self) -> bool {
        let path = self.path.to_string_lossy();
        path.is_empty() || path == ":memory:" || path.contains("mode=memory")
    }
}

impl Reconnect for Connection {
    type Recipe = SqliteRecipe;
    const KIND: &'static str = "sqlite";

    fn open(recipe: &SqliteRecipe, _: Option<&Secret>) -> Result<Self, ReconnectError> {
        if recipe.is_in_memory() {
            return Err(ReconnectError::Unsupported(
                "an in-memory SQLite database cannot be reopened in another process (its data lives in one process only); use a database file".into(),
            ));
        }
        let flags = if recipe.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::default()
        };
        Connection::open_with_flags(&recipe.path, flags)
            .map_err(|e| open_error(Self::KIND, recipe.path.display(), e))
    }
}
