use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Plain {
    x: u32,
}

#[shared]
#[derive(Serialize, Deserialize)]
struct Holder {
    plain: Plain,
}

fn main() {}
