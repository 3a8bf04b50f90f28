use skprocess::prelude::*;

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let factor = 3u64;
    let _ = pool.map(move |x: u64| x * factor, 0..10u64)?;
    Ok(())
}
