use skprocess::prelude::*;

#[skprocess]
#[derive(Serialize, Deserialize)]
struct Worker {
    count: u64,
}

fn main() {}
