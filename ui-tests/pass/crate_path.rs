//! A crate that reaches skprocess under another name tells the macros with `crate = …`; the
//! generated code then names nothing but that path.

pub extern crate skprocess as renamed;

use renamed::prelude::{Ctx, Deserialize, Serialize};

/// A framework that re-exports skprocess, as a user's own crate would.
mod framework {
    pub use renamed as skprocess;
}

#[derive(Serialize, Deserialize)]
struct Doubler {
    value: u64,
}

#[renamed::skprocess(crate = renamed, runs = 3, timeout(run = "5s"), outbox = u64)]
impl Doubler {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), renamed::Error> {
        self.value *= 2;
        ctx.tell(self.value)
    }

    fn result(&mut self) -> Result<u64, String> {
        Ok(self.value)
    }

    fn error(&mut self, error: &renamed::Error) -> u64 {
        panic!("not reached: {error}")
    }
}

/// A re-exported path and no prelude at all: the generated code still resolves.
mod nested {
    #![no_implicit_prelude]

    use crate::framework::skprocess::prelude::{Deserialize, Serialize};
    use ::std::borrow::ToOwned;
    use ::std::string::String;

    #[derive(Serialize, Deserialize)]
    pub struct Greeter;

    #[crate::framework::skprocess::skprocess(crate = crate::framework::skprocess)]
    impl Greeter {
        fn run(&mut self) {}

        fn result(&mut self) -> String {
            "hello".to_owned()
        }
    }
}

#[renamed::main(crate = renamed)]
fn main() {
    use renamed::Process;

    let handle = Doubler { value: 5 }.start().expect("the child starts");
    assert_eq!(handle.result().expect("every hook succeeds"), 40);
    let greeting = nested::Greeter.start().and_then(renamed::Handle::result);
    assert_eq!(greeting.expect("the child finishes"), "hello");
}
