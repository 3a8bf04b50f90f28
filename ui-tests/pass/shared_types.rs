//! `#[shared]` on a struct and its `impl`, used as a user would, with `Self` in signatures,
//! pattern arguments, std collections and the built-ins.

use std::collections::{BTreeMap, HashSet, VecDeque};

use skprocess::prelude::*;
use skprocess::{BreakingCircuit, Sktimer};

#[shared]
#[derive(Default, Serialize, Deserialize)]
pub struct Board {
    pub score: i64,
    pub ratio: f64,
    pub name: String,
    pub queue: VecDeque<u32>,
    pub tags: HashSet<String>,
    pub ranks: BTreeMap<String, u32>,
    pub timer: Sktimer,
    pub circuit: Option<BreakingCircuit>,
}

#[shared]
impl Board {
    /// Adds points.
    pub fn add(&mut self, points: i64) {
        self.score += points;
    }

    pub fn rename(&mut self, (first, last): (String, String)) -> Self {
        self.name = format!("{first} {last}");
        Self::default()
    }

    pub fn score(&self) -> i64 {
        self.score
    }

    fn helper() -> u32 {
        3
    }
}

fn use_it(mut board: Share<Board>) -> Result<(), Error> {
    board.score += 3;
    board.ratio *= 1.5;
    board.name += "x";
    board.queue.push_front(Board::helper());
    let _new: bool = board.tags.insert("a".to_owned())?;
    let _old: Option<u32> = board.ranks.insert("b".to_owned(), 1)?;
    board.timer.add_time(std::time::Duration::from_millis(1));
    board.add(1);
    let _fresh: Board = board.rename(("a".into(), "b".into()))?;
    let _score: i64 = board.score()?;
    Ok(())
}

fn main() {
    let _ = use_it;
    assert_eq!(Board::SHARED_META.method("add").unwrap().writes, ["score"]);
}
