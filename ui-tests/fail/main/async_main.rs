#[skprocess::main]
async fn main() {}
