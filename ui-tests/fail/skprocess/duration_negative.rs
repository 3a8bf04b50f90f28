use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(timeout(run = "-200ms"))]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
