use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(join_in = 20)]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
