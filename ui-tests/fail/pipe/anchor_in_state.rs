use skprocess::prelude::*;
use skprocess::Anchor;

#[derive(Serialize, Deserialize)]
struct Coordinator {
    jobs: Anchor<u32, u32>,
}

#[skprocess]
impl Coordinator {
    fn run(&mut self) {}
}

fn main() {}
