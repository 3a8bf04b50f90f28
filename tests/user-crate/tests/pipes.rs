skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// A pipe whose point moves into a process type defined in this test file, used only through
// skprocess's public API.

use std::time::Duration;

use skprocess::Point;
use skprocess::error::Peer;
use skprocess::prelude::*;

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Echo {
    pipe: Point<String, String>,
}

#[skprocess(runs = None)]
impl Echo {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match self.pipe.recv() {
            Ok(word) => self.pipe.send(word.to_uppercase()),
            // The parent closed its end: finish.
            Err(Error::Gone {
                peer: Peer::PipeEnd,
            }) => {
                ctx.request_stop();
                Ok(())
            }
            Err(other) => Err(other),
        }
    }
}

#[test]
fn a_point_in_a_process_echoes_until_the_anchor_is_closed() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<String, String>().unwrap();
    let handle = Echo { pipe: point }.start().unwrap();
    for word in ["one", "two", "three"] {
        anchor.send(word.to_owned()).unwrap();
        assert_eq!(
            anchor.recv_timeout(LIMIT).unwrap(),
            Some(word.to_uppercase())
        );
    }
    anchor.close();
    handle.result_timeout(LIMIT).unwrap();
}
