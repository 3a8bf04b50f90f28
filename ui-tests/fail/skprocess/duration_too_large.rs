use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess(join_in = "99999999999999999999999h")]
impl Worker {
    fn run(&mut self) {}
}

fn main() {}
