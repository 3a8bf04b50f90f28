use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(timeout(run = "1s", finish = "2s"))]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
