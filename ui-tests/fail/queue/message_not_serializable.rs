use skprocess::Queue;

/// A message type without `Serialize` and `Deserialize`.
struct Job {
    id: u32,
}

fn main() {
    let jobs = Queue::new().unwrap();
    jobs.put(Job { id: 1 }).unwrap();
}
