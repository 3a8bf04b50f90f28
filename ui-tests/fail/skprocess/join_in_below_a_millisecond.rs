use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(join_in = "0.5ms")]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
