#![no_implicit_prelude]

#[::skprocess::shared]
#[derive(::skprocess::prelude::Serialize, ::skprocess::prelude::Deserialize)]
struct Tally {
    counter: u64,
    results: ::std::vec::Vec<u64>,
}

#[::skprocess::shared]
impl Tally {
    fn record(&mut self, value: u64) {
        self.results.push(value);
    }

    fn total(&self) -> u64 {
        self.counter
    }
}

fn main() {}
