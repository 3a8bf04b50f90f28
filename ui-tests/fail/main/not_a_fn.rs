#[skprocess::main]
struct App;

fn main() {}
