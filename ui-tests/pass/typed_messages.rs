use std::time::Duration;

use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Query {
    number: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reply {
    doubled: u64,
}

#[derive(Serialize, Deserialize)]
struct Doubler;

#[skprocess(inbox = Query, outbox = Reply)]
impl Doubler {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let query = ctx.listen()?;
        ctx.tell(Reply { doubled: query.number * 2 })
    }
}

#[skprocess::main]
fn main() -> Result<(), Error> {
    let handle = Doubler.start()?;
    handle.tell(Query { number: 21 })?;
    let reply = handle.listen_timeout(Duration::from_secs(10))?;
    assert_eq!(reply, Some(Reply { doubled: 42 }));
    handle.result()
}
