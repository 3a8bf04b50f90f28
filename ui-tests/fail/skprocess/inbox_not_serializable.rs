use skprocess::prelude::*;

struct Query;

#[derive(Serialize, Deserialize)]
struct Server;

#[skprocess(inbox = Query)]
impl Server {
    fn run(&mut self) {}
}

fn main() {}
