use skprocess::prelude::*;

#[shared]
#[derive(Serialize, Deserialize)]
enum Light {
    Red,
    Green,
}

#[shared]
fn helper() {}

fn main() {}
