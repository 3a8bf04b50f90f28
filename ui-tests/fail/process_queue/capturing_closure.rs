use skprocess::ProcessQueue;
use skprocess::prelude::*;

#[skprocess::main]
fn main() -> Result<(), Error> {
    let offset = 3u64;
    let queue = ProcessQueue::new(move |item: u64| println!("{}", item + offset));
    queue.start([1u64, 2])?;
    Ok(())
}
