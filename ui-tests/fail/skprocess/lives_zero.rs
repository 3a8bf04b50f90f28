use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(lives = 0)]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
