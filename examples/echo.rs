//! Typed messages both ways: the parent tells lines to a child, which echoes them back.
//!
//! Run it with `cargo run --example echo`.

use std::time::Duration;

use skprocess::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Shout(String),
    Whisper(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    text: String,
    served_by: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Echo {
    served: u64,
}

#[skprocess(runs = None, inbox = Request, outbox = Reply)]
impl Echo {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let Some(request) = ctx.listen_timeout(Duration::from_millis(100))? else {
            return Ok(());
        };
        let text = match request {
            Request::Shout(text) => text.to_uppercase(),
            Request::Whisper(text) => text.to_lowercase(),
        };
        self.served += 1;
        ctx.tell(Reply {
            text,
            served_by: std::process::id(),
        })
    }

    fn result(&mut self) -> u64 {
        self.served
    }
}

#[skprocess::main]
fn main() -> Result<(), skprocess::Error> {
    let echo = Echo::default().start()?;
    let requests = [
        Request::Shout("hello".into()),
        Request::Whisper("QUIET PLEASE".into()),
        Request::Shout("bye".into()),
    ];
    for request in requests {
        println!("parent -> child: {request:?}");
        echo.tell(request)?;
        let reply = echo.listen()?;
        println!("child {} -> parent: {}", reply.served_by, reply.text);
    }
    echo.stop()?;
    let served = echo.result()?;
    assert_eq!(served, 3);
    println!("the child served {served} requests and stopped");
    Ok(())
}
