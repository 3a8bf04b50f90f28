use skprocess::prelude::*;

struct Opaque;

#[shared]
#[derive(Serialize, Deserialize)]
struct Holder {
    count: u64,
    opaque: Opaque,
}

fn main() {}
