use std::time::Duration;

use skprocess::prelude::*;

#[derive(Serialize, Deserialize, Default)]
struct Flaky {
    attempts: u32,
}

#[skprocess(runs = 2, lives = 3, join_in = "30s", timeout(run = "5s", result = "1.5s"))]
impl Flaky {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), String> {
        self.attempts += 1;
        if ctx.lives_left() == 3 {
            return Err("first attempt fails".into());
        }
        Ok(())
    }

    fn result(&mut self) -> u32 {
        self.attempts
    }

    fn error(&mut self, _ctx: &mut Ctx<Self>, error: &Error) -> u32 {
        panic!("not reached: {error}")
    }
}

#[skprocess::main]
fn main() {
    let config = Flaky::default_config();
    assert_eq!(config.lives, 3);
    assert_eq!(config.timeouts.run, Some(Duration::from_secs(5)));
    assert_eq!(config.timeouts.result, Some(Duration::from_millis(1500)));
    assert_eq!(config.join_in, Some(Duration::from_secs(30)));
    assert_eq!(Flaky::default().start().unwrap().result().unwrap(), 3);
}
