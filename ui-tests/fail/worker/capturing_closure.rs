#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let factor = 3u64;
    let worker = skprocess::run(move |x: u64| x * factor, (2u64,))?;
    let _ = worker.join()?;
    Ok(())
}
