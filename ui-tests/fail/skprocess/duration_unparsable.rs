use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(join_in = "soon")]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
