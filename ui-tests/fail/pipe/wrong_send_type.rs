use skprocess::Pipe;

fn main() -> Result<(), skprocess::Error> {
    let (anchor, _point) = Pipe::pair::<u32, String>()?;
    anchor.send("twenty-one")?;
    Ok(())
}
