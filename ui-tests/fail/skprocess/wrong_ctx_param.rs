use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Borrowed;

#[skprocess]
impl Borrowed {
    fn run(&mut self, ctx: &Ctx<Self>) {
        let _ = ctx;
    }
}

fn main() {}
