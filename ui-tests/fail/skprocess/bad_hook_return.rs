use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Counter {
    count: u32,
}

#[skprocess]
impl Counter {
    fn run(&mut self) -> u32 {
        self.count += 1;
        self.count
    }
}

fn main() {}
