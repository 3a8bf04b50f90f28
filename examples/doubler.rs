//! The smallest skprocess program: a process that doubles a number three times in a child.
//!
//! Run it with `cargo run --example doubler`.

use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Doubler {
    value: u64,
}

#[skprocess(runs = 3)]
impl Doubler {
    fn run(&mut self) {
        self.value *= 2;
    }

    fn result(&mut self) -> u64 {
        self.value
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let handle = Doubler { value: 5 }.start()?;
    println!("started Doubler in child process {}", handle.pid());
    let value = handle.result()?;
    assert_eq!(value, 40);
    println!("5 doubled three times in another process is {value}");
    Ok(())
}
