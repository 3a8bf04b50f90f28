//! SCN-15: a `#[skprocess]` type per item. Each worker runs the item's whole lifecycle
//! in-process, and the item's output is its `result`.
//!
//! Run it with `cargo run --example pool_processes`.

use skprocess::prelude::*;

/// An input record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: u64,
    value: u64,
}

/// What a `DataTransformer` produces.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Transformed {
    id: u64,
    doubled: u64,
    squared: u64,
}

#[derive(Serialize, Deserialize)]
struct DataTransformer {
    record: Record,
    output: Option<Transformed>,
}

#[skprocess]
impl DataTransformer {
    fn run(&mut self) {
        let value = self.record.value;
        self.output = Some(Transformed {
            id: self.record.id,
            doubled: value * 2,
            squared: value * value,
        });
    }

    fn result(&mut self) -> Result<Transformed, String> {
        self.output
            .take()
            .ok_or_else(|| "run did not finish".to_owned())
    }
}

#[derive(Serialize, Deserialize)]
struct AddProcess {
    a: u64,
    b: u64,
}

#[skprocess]
impl AddProcess {
    fn run(&mut self) {}

    fn result(&mut self) -> u64 {
        self.a + self.b
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let pool = Pool::new(2)?;
    let records = (1..=4).map(|id| Record { id, value: id * 10 });
    let items = records.map(|record| DataTransformer {
        record,
        output: None,
    });
    for output in pool.map_processes(items)? {
        println!("{output:?}");
    }
    let sums = pool.map_processes([(1, 2), (3, 4), (5, 6)].map(|(a, b)| AddProcess { a, b }))?;
    println!("AddProcess over (1,2), (3,4), (5,6) = {sums:?}");
    assert_eq!(sums, [3, 7, 11]);
    Ok(())
}
