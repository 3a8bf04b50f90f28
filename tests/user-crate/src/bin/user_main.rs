//! A `#[skprocess::main]` program: starts [`EnvProbe`] in a child and prints what its hooks saw
//! as one line of plain text, e.g. `thread=main sigpipe=ignored env=absent`.

use std::time::Duration;

use skprocess::prelude::*;
use skprocess_user_crate::EnvProbe;

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let report = EnvProbe::default()
        .start()?
        .result_timeout(Duration::from_secs(30))?;
    println!("{report}");
    Ok(())
}
