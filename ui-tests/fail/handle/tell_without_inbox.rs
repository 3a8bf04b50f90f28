use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Deaf;

#[skprocess]
impl Deaf {
    fn run(&mut self) {}
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let handle = Deaf.start()?;
    handle.tell("are you there?".to_owned())?;
    handle.result()
}
