use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Holder<T> {
    value: T,
}

#[skprocess]
impl<T> Holder<T> {
    fn run(&mut self) {}
}

fn main() {}
