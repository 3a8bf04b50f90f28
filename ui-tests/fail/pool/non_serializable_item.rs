use skprocess::prelude::*;

struct Opaque(u64);

fn unwrap(x: Opaque) -> u64 {
    x.0
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let _ = pool.map(unwrap, [Opaque(1)])?;
    Ok(())
}
