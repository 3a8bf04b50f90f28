use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Snake;

#[skprocess]
impl Snake {
    fn run(&mut self) {}

    fn on_finish(&mut self) {}
}

fn main() {}
