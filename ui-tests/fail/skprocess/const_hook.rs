use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Frozen;

#[skprocess]
impl Frozen {
    const fn run(&mut self) {}
}

fn main() {}
