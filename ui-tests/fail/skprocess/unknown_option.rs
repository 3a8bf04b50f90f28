use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(runs = 2, retries = 3)]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
