use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Idle;

#[skprocess]
impl Idle {
    fn prerun(&mut self) {}
}

fn main() {}
