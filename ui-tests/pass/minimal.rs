use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Minimal;

#[skprocess]
impl Minimal {
    fn run(&mut self) {}
}

#[skprocess::main]
fn main() {
    let handle = Minimal.start().expect("the child starts");
    handle.result().expect("the child finishes");
}
