use skprocess::prelude::*;

#[autoreconnect(sqlite(database = "hunter2!"))]
#[derive(Serialize, Deserialize)]
struct Worker {
    database: Live<rusqlite::Connection>,
}

fn main() {}
