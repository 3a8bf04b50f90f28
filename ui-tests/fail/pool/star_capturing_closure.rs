use skprocess::prelude::*;

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let offset = 1u64;
    let _ = pool
        .star()
        .map(move |a: u64, b: u64| a + b + offset, [(1u64, 2u64)])?;
    Ok(())
}
