use skprocess::prelude::*;

#[shared]
#[derive(Serialize, Deserialize)]
struct Tally {
    counter: u64,
}

#[shared]
impl Tally {
    fn add<T: Into<u64>>(&mut self, amount: T) {
        self.counter += amount.into();
    }
}

fn main() {}
