use skprocess::prelude::*;
use skprocess::process::{HookFailure, HookResult, NoMessages};

#[derive(Serialize, Deserialize)]
struct Tripler {
    value: u64,
}

impl Process for Tripler {
    type Output = u64;
    type Inbox = NoMessages;
    type Outbox = NoMessages;

    const KEY: &'static str = concat!(module_path!(), "::Tripler");

    fn default_config() -> Config {
        Config::default().runs(2)
    }

    fn run(&mut self, _ctx: &mut Ctx<Self>) -> HookResult {
        self.value *= 3;
        Ok(())
    }

    fn result(&mut self, _ctx: &mut Ctx<Self>) -> Result<u64, HookFailure> {
        Ok(self.value)
    }
}

skprocess::register!(Tripler);

#[skprocess::main]
fn main() {
    let value = Tripler { value: 1 }
        .start()
        .and_then(Handle::result)
        .expect("the child finishes");
    assert_eq!(value, 9);
}
