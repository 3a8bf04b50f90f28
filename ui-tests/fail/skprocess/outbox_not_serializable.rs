use skprocess::prelude::*;

struct Reply;

#[derive(Serialize, Deserialize)]
struct Server;

#[skprocess(outbox = Reply)]
impl Server {
    fn run(&mut self) {}
}

fn main() {}
