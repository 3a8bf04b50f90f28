use skprocess::prelude::*;

#[shared]
#[derive(Serialize, Deserialize)]
struct Pair(u64, u64);

fn main() {}
