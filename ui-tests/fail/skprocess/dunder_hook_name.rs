use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Pythonic;

#[skprocess]
impl Pythonic {
    fn __run__(&mut self) {}
}

fn main() {}
