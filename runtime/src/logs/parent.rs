//! The parent's side: one collector per process that re-emits children's records.

use std::sync::OnceLock;

use super::{LogMessage, LogRecord};
use crate::transport::Connection;
use crate::transport::frame::FrameReader;
use crate::transport::service::Service;

const MAX_FRAME: u32 = 1024 * 1024;

/// The collector, started at the first spawn; `None` if it could not start (children then
/// keep their records).
static COLLECTOR: OnceLock<Option<Service>> = OnceLock::new();

/// The collector's socket, removed at exit: the collector lives in a static, which is never
/// dropped, so its private directory would outlive the process.
static SOCKET: OnceLock<std::path::PathBuf> = OnceLock::new();

extern "C" fn remove_socket() {
    // An abstract name (Linux) is no file: only a real socket path is removed.
    if let Some(address) = SOCKET.get().filter(|a| a.is_absolute()) {
        let _ = std::fs::remove_file(address);
        if let Some(dir) = address.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn start_collector() -> Option<Service> {
    let service = Service::start("skprocess-logs", MAX_FRAME, None, serve).ok()?;
    if SOCKET.set(service.endpoint().address.clone()).is_ok() {
        crate::sys::at_exit(remove_socket);
    }
    Some(service)
}

/// The value of `SKPROCESS_LOGS` for a child: `<token>:<address>`.
pub(crate) fn child_variable() -> Option<String> {
    let service = COLLECTOR.get_or_init(start_collector).as_ref()?;
    let endpoint = service.endpoint();
    Some(format!("{}:{}", endpoint.token, endpoint.address.display()))
}

/// Hands each child's connection to a reader thread of its own.
fn serve(connection: Connection, hello: crate::transport::rendezvous::Hello) {
    let pid = hello.pid;
    let _ = std::thread::Builder::new()
        .name("skprocess-child-logs".to_owned())
        .spawn(move || read_records(&connection, pid));
}

fn read_records(connection: &Connection, pid: u32) {
    let mut reader = FrameReader::new(MAX_FRAME);
    let mut process = String::new();
    loop {
        match reader.read_message::<_, LogMessage>(&mut connection.stream()) {
            Ok(Some(LogMessage::Hello { process: name })) => process = name,
            Ok(Some(LogMessage::Record(record))) => emit(&record, pid, &process),
            // The child exited, or sent something malformed: stop reading it.
            Ok(None) | Err(_) => return,
        }
    }
}

/// Re-emits a child's record in this process, for its subscriber.
fn emit(record: &LogRecord, pid: u32, process: &str) {
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: "skprocess::child",
                $level,
                pid,
                process,
                child_target = record.target.as_str(),
                fields = record.fields.as_str(),
                "{}",
                record.message
            )
        };
    }
    match record.level {
        1 => event!(tracing::Level::ERROR),
        2 => event!(tracing::Level::WARN),
        3 => event!(tracing::Level::INFO),
        4 => event!(tracing::Level::DEBUG),
        _ => event!(tracing::Level::TRACE),
    }
}
