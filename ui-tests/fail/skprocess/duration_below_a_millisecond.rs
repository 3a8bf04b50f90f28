use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(timeout(run = "500us"))]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
