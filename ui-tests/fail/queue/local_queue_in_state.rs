use skprocess::prelude::*;
use skprocess::LocalQueue;

#[derive(Serialize, Deserialize)]
struct Reader {
    jobs: LocalQueue<u64>,
}

#[skprocess]
impl Reader {
    fn run(&mut self) {}
}

fn main() {}
