use skprocess::prelude::*;

struct Opaque(u64);

fn wrap(x: u64) -> Opaque {
    Opaque(x)
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let _ = pool.map(wrap, [1u64])?;
    Ok(())
}
