use skprocess::prelude::*;

struct Stateful {
    count: u64,
}

#[skprocess]
impl Stateful {
    fn run(&mut self) {
        self.count += 1;
    }
}

fn main() {}
