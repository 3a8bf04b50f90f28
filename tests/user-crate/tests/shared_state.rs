skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// A `#[shared]` type and a process type from the library, used as an outside user would.

use std::time::Duration;

use skprocess::prelude::*;
use skprocess_user_crate::scores::{Player, Scoreboard};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn library_processes_update_a_library_share_exactly() {
    let _bound = bound::within(TEST_BOUND);
    let board = Share::new(Scoreboard::default()).unwrap();
    let handles: Vec<_> = [("ada", 30), ("bob", 20), ("cy", 10)]
        .into_iter()
        .map(|(player, games)| {
            Player {
                board: board.clone(),
                player: player.to_owned(),
                games,
            }
            .start()
            .unwrap()
        })
        .collect();
    for handle in handles {
        handle.result_timeout(LIMIT).unwrap();
    }
    assert_eq!(board.games.get().unwrap(), 60);
    assert_eq!(board.points.at("bob").unwrap(), Some(20));
    assert_eq!(board.leader().unwrap().as_deref(), Some("ada"));
    let meta = Scoreboard::SHARED_META.method("score").unwrap();
    assert_eq!(meta.writes, ["points"]);
}
