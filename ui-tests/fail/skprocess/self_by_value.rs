use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Consumed;

#[skprocess]
impl Consumed {
    fn run(self) {}
}

fn main() {}
