//! `#[autoreconnect]` names everything by absolute path, so it compiles without the prelude,
//! with secrets by kind, field and `"*"`, and beside `#[skprocess]`.

#![no_implicit_prelude]

use ::skprocess::prelude::*;
use ::skprocess::reconnect::{FileRecipe, SqliteRecipe};

#[autoreconnect(sqlite(main = "MAIN_DB_KEY", "*" = "DB_KEY"), file("*" = "FILE_KEY"))]
#[derive(Serialize, Deserialize)]
struct Worker {
    main: Live<::rusqlite::Connection>,
    spare: Live<::rusqlite::Connection>,
    log: Live<::std::fs::File>,
    count: u32,
}

#[skprocess]
impl Worker {
    fn run(&mut self) {
        self.count += 1;
    }
}

fn main() {
    let _worker = Worker {
        main: Live::deferred(SqliteRecipe::file("main.db")),
        spare: Live::deferred(SqliteRecipe::file("spare.db")),
        log: Live::deferred(FileRecipe::append("log.txt")),
        count: 0,
    };
}
