use skprocess::prelude::*;

struct Opaque;

#[shared]
#[derive(Serialize, Deserialize)]
struct Tally {
    counter: u64,
}

#[shared]
impl Tally {
    fn peek(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
