use skprocess::prelude::*;

#[autoreconnect(sqlite(databse = "DB_KEY"))]
#[derive(Serialize, Deserialize)]
struct Worker {
    database: Live<rusqlite::Connection>,
}

fn main() {}
