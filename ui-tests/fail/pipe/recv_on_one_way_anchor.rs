use skprocess::Pipe;

fn main() -> Result<(), skprocess::Error> {
    let (anchor, _point) = Pipe::one_way::<u32>()?;
    let _reply = anchor.recv()?;
    Ok(())
}
