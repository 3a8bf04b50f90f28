//! Generated code names everything by absolute path, so it compiles without the prelude.

#![no_implicit_prelude]

use ::skprocess;
use ::skprocess::prelude::*;

use ::std::borrow::ToOwned;
use ::std::string::String;
use ::std::vec::Vec;

const PATIENCE: ::core::time::Duration = ::core::time::Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct Everything {
    log: Vec<String>,
}

#[skprocess(runs = 2, lives = 2, timeout(run = "1s"), inbox = u64, outbox = u64)]
impl Everything {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(::std::format!("prerun {}", ctx.current_run()));
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) -> ::core::result::Result<(), Error> {
        let number = ctx.listen()?;
        self.log.push(::std::format!("run {number}"));
        ctx.tell(number * 2)
    }

    fn postrun(&mut self) -> ::core::result::Result<(), String> {
        self.log.push("postrun".to_owned());
        ::core::result::Result::Ok(())
    }

    fn onfinish(&mut self, _ctx: &mut Ctx<Self>) {
        self.log.push("onfinish".to_owned());
    }

    fn result(&mut self) -> ::core::result::Result<Vec<String>, String> {
        ::core::result::Result::Ok(::core::mem::take(&mut self.log))
    }

    fn error(&mut self, _ctx: &mut Ctx<Self>, error: &Error) -> Vec<String> {
        ::core::panic!("not reached: {error}")
    }
}

#[derive(Serialize, Deserialize)]
struct Failing;

#[skprocess]
impl Failing {
    fn run(&mut self) -> ::core::result::Result<(), String> {
        ::core::result::Result::Err("always fails".to_owned())
    }

    fn result(&mut self, _ctx: &mut Ctx<Self>) -> u8 {
        0
    }

    fn error(&mut self, error: &Error) -> ::core::result::Result<u8, String> {
        ::std::assert!(::std::string::ToString::to_string(error).contains("always fails"));
        ::core::result::Result::Ok(7)
    }
}

#[skprocess::main]
fn main() {
    let handle = Everything { log: Vec::new() }.start().expect("the child starts");
    for number in [10, 20] {
        handle.tell(number).expect("the child is running");
        let reply = handle.listen_timeout(PATIENCE).expect("the child replies");
        ::std::assert_eq!(reply, ::core::option::Option::Some(number * 2));
    }
    let log = handle.result().expect("every hook succeeds");
    ::std::assert_eq!(
        log,
        ["prerun 0", "run 10", "postrun", "prerun 1", "run 20", "postrun", "onfinish"],
    );

    let recovered = Failing.start().and_then(Handle::result);
    ::std::assert_eq!(recovered.expect("the error hook recovers"), 7);
}
