use skprocess::prelude::*;

fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let _ = pool.star().map(add as fn(u64, u64) -> u64, [(1u64, 2u64, 3u64)])?;
    Ok(())
}
