use skprocess::prelude::*;

struct Handle;

#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Worker {
    handle: Live<Handle>,
}

fn main() {}
