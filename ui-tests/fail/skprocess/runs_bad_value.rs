use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(runs = "3")]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
