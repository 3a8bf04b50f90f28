//! Child log records reach the parent's subscriber with the child's pid and process type
//! (issue 8, item 8): `tracing` events and `log` records, without sharing anything.

use std::sync::Mutex;
use std::time::Duration;

use skprocess::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

const BOUND: Duration = Duration::from_secs(30);

/// One event: its level and its fields as `(name, value)`.
type Seen = (tracing::Level, Vec<(String, String)>);

/// What the parent's subscriber saw.
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        struct Fields(Vec<(String, String)>);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.0.push((field.name().to_owned(), value.to_string()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        SEEN.lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[derive(Serialize, Deserialize)]
struct Chatty {
    item: u64,
}

#[skprocess]
impl Chatty {
    fn run(&mut self) {
        tracing::info!(result = self.item * 2, "done");
        log::warn!("through the log crate: {}", self.item);
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Installs the capturing subscriber once for every test of this file.
fn capture() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// The records of the child `pid`, waiting (bounded) until there are at least `count`.
fn records_of(pid: u32, count: usize) -> Vec<Seen> {
    let mut records = Vec::new();
    bound::eventually(BOUND, || {
        records = SEEN
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, fields)| field(fields, "pid") == Some(&pid.to_string()))
            .cloned()
            .collect();
        records.len() >= count
    });
    records
}

#[test]
fn child_records_reach_the_parent_subscriber_with_pid_and_process_type() {
    let _bound = bound::within(TEST_BOUND);
    capture();
    let handle = Chatty { item: 21 }.start().unwrap();
    let pid = handle.pid();
    handle.result_timeout(BOUND).unwrap();
    let records = records_of(pid, 2);
    assert_eq!(records.len(), 2, "{records:?}");
    let (level, fields) = &records[0];
    assert_eq!(*level, tracing::Level::INFO);
    assert_eq!(field(fields, "message"), Some("done"));
    assert_eq!(field(fields, "fields"), Some("result=42"));
    assert_eq!(field(fields, "process"), Some("share_logs::Chatty"));
    let (level, fields) = &records[1];
    assert_eq!(*level, tracing::Level::WARN);
    assert_eq!(field(fields, "message"), Some("through the log crate: 21"));
}

// Named pipes live in no directory: on Windows there is nothing to find in it.
#[cfg(unix)]
#[test]
fn the_collector_of_a_child_spawned_with_a_socket_dir_listens_in_that_dir() {
    let _bound = bound::within(TEST_BOUND);
    capture();
    let dir = std::env::temp_dir().join(format!("skp-logs-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handle = Chatty { item: 4 }
        .start_with(Chatty::default_config().socket_dir(&dir))
        .unwrap();
    let pid = handle.pid();
    handle.result_timeout(BOUND).unwrap();
    assert_eq!(records_of(pid, 2).len(), 2);
    // The spawn's own rendezvous is gone once the child connected: what is left in the
    // directory is the collector's socket (before, the collector ignored `socket_dir`).
    let sockets: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path().join("s"))
        .filter(|socket| socket.exists())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
}
