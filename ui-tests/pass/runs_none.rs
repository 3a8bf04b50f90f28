use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Countdown {
    left: u32,
    runs: u32,
}

#[skprocess(runs = None)]
impl Countdown {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.runs += 1;
        self.left -= 1;
        if self.left == 0 {
            ctx.request_stop();
        }
    }

    fn result(&mut self) -> u32 {
        self.runs
    }
}

#[skprocess::main]
fn main() {
    assert_eq!(Countdown::default_config().runs, None);
    let runs = Countdown { left: 5, runs: 0 }
        .start()
        .and_then(Handle::result)
        .expect("the child stops itself");
    assert_eq!(runs, 5);
}
