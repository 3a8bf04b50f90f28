use skprocess::WorkerResource;

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let suffix = String::from("!");
    let mut worker = WorkerResource::new(move |line: String| line + &suffix)?;
    let _ = worker.execute("hi".to_owned())?;
    Ok(())
}
