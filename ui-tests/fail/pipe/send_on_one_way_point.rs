use skprocess::Pipe;

fn main() -> Result<(), skprocess::Error> {
    let (_anchor, point) = Pipe::one_way::<u32>()?;
    point.send(1)?;
    Ok(())
}
