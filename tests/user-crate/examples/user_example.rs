//! Starts process types defined in the user crate's library and prints their results.
//!
//! Run it with `cargo run -p skprocess-user-crate --example user_example`.

use std::time::Duration;

use skprocess::prelude::*;
use skprocess_user_crate::Doubler;
use skprocess_user_crate::jobs::WordCounter;

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let limit = Duration::from_secs(30);
    let doubled = Doubler { value: 7 }.start()?.result_timeout(limit)?;
    println!("Doubler {{ value: 7 }} doubled three times in a child: {doubled}");
    assert_eq!(doubled, 56);

    let counter = WordCounter::new(&["the quick brown fox", "jumps over", "the lazy dog"]);
    let config = counter.config();
    let tally = counter.start_with(config)?.result_timeout(limit)?;
    println!(
        "WordCounter counted {} words ({:?} per line), longest {:?}",
        tally.words, tally.per_line, tally.longest
    );
    assert_eq!(tally.words, 9);
    Ok(())
}
