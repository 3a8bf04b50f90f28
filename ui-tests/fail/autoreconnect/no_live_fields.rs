use skprocess::prelude::*;

#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Worker {
    count: u32,
}

fn main() {}
