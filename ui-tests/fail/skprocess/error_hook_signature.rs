use skprocess::prelude::*;

#[derive(Serialize, Deserialize)]
struct Worker;

#[skprocess]
impl Worker {
    fn run(&mut self) {}

    fn error(&mut self, message: String) -> String {
        message
    }
}

fn main() {}
