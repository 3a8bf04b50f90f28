#[skprocess::main(threads = 4)]
fn main() {}
