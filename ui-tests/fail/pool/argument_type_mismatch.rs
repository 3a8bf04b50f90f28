use skprocess::prelude::*;

fn shout(text: String) -> String {
    text.to_uppercase()
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let _ = pool.map(shout, [1u64, 2, 3])?;
    Ok(())
}
