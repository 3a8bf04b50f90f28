use skprocess::prelude::*;

struct Opaque;

#[shared]
#[derive(Serialize, Deserialize)]
struct Tally {
    counter: u64,
}

#[shared]
impl Tally {
    fn add(&mut self, amount: u64, note: Opaque) {
        let _ = note;
        self.counter += amount;
    }
}

fn main() {}
