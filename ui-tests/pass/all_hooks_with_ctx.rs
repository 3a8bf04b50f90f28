use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Journal {
    entries: Vec<String>,
}

#[skprocess(runs = 2)]
impl Journal {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) {
        self.entries.push(format!("prerun {}", ctx.current_run()));
    }

    fn run(&mut self) -> Result<(), String> {
        self.entries.push("run".to_owned());
        Ok(())
    }

    fn postrun(&mut self, ctx: &mut skprocess::Ctx<Journal>) -> Result<(), String> {
        self.entries.push(format!("postrun {}", ctx.current_run()));
        Ok(())
    }

    fn onfinish(&mut self) {
        self.entries.push("onfinish".to_owned());
    }

    fn result(&mut self, _ctx: &mut Ctx<Self>) -> Vec<String> {
        std::mem::take(&mut self.entries)
    }
}

#[skprocess::main]
fn main() {
    let entries = Journal { entries: Vec::new() }
        .start()
        .expect("the child starts")
        .result()
        .expect("every hook succeeds");
    assert_eq!(
        entries,
        [
            "prerun 0", "run", "postrun 0", "prerun 1", "run", "postrun 1", "onfinish",
        ]
    );
}
