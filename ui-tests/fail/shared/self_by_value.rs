use skprocess::prelude::*;

#[shared]
#[derive(Serialize, Deserialize)]
struct Tally {
    counter: u64,
}

#[shared]
impl Tally {
    fn into_count(self) -> u64 {
        self.counter
    }
}

fn main() {}
