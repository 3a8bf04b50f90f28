use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Shared;

#[skprocess]
impl Shared {
    fn run(&self) {}
}

fn main() {}
