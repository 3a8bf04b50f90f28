use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(crate = "skprocess")]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
