use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Greedy;

#[skprocess]
impl Greedy {
    fn run(&mut self, ctx: &mut Ctx<Self>, times: u32) {
        let _ = (ctx, times);
    }
}

fn main() {}
