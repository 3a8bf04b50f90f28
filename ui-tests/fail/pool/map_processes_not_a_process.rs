use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Record {
    id: u64,
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let _ = pool.map_processes([Record { id: 1 }])?;
    Ok(())
}
