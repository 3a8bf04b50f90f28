use skprocess::prelude::*;

#[autoreconnect(postgres("*" = "PGPASSWORD"))]
#[derive(Serialize, Deserialize)]
struct Worker {
    database: Live<rusqlite::Connection>,
}

fn main() {}
