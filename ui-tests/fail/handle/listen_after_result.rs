use std::time::Duration;

use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Talker;

#[skprocess(outbox = String)]
impl Talker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        ctx.tell("hello".to_owned())
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let handle = Talker.start()?;
    handle.result()?;
    let _late = handle.listen_timeout(Duration::from_secs(1))?;
    Ok(())
}
