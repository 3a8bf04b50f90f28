use skprocess::prelude::*;

/// A zero-sized value whose existence means something: a worker must never make one up.
#[derive(Clone, Copy)]
struct Proof;

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let proof = Proof;
    let _ = pool.map(
        move |x: u64| {
            let _held = proof;
            x
        },
        0..10u64,
    )?;
    Ok(())
}
