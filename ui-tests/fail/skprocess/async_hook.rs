use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Eager;

#[skprocess]
impl Eager {
    async fn run(&mut self) {}
}

fn main() {}
