//! The parent's side: one collector per process (and per socket directory a spawn asked for)
//! that re-emits children's records. Each child's connection is a session on the collector's
//! server, so the connections it serves at once are capped like every server's.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, PoisonError};

use super::{ENV_LOGS, LogMessage, LogRecord};
use crate::config::Config;
use crate::parent::spawn::{CHILD_ENVIRONMENT, ChildEnvironment};
use crate::transport::frame;
use crate::transport::server::{Flow, Peer, Server, ServerConfig, Session};

const MAX_FRAME: u32 = 1024 * 1024;

/// The collectors, by the socket directory they were started in, started at the first spawn
/// that needs each; `None` if one could not start (children then keep their records).
static COLLECTORS: Mutex<Vec<(Option<PathBuf>, Option<Server>)>> = Mutex::new(Vec::new());

/// The collectors' socket files, removed at exit: the collectors live in a static, which is
/// never dropped, so their private directories would outlive the process. After a SIGKILL no
/// exit handler runs; the next bind in the same directory sweeps it (`sys`'s private
/// directories are named after their owner).
static SOCKETS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_sockets() {
    // `try_lock`: an exit while the lock is held (a spawn on another thread) skips the
    // cleanup rather than deadlocking in `exit`.
    let Ok(sockets) = SOCKETS.try_lock() else {
        return;
    };
    for address in sockets.iter() {
        let _ = std::fs::remove_file(address);
        if let Some(dir) = address.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn start_collector(socket_dir: Option<&Path>) -> Option<Server> {
    let mut config = ServerConfig::new("skprocess-logs", MAX_FRAME);
    config.socket_dir = socket_dir.map(Path::to_path_buf);
    let server = Server::start(config, |peer: &Peer| {
        Some(ChildLogs {
            pid: peer.pid(),
            process: String::new(),
        })
    })
    .ok()?;
    let address = &server.endpoint().address;
    // An abstract name (Linux) is no file: only a real socket path is removed at exit.
    if address.is_absolute() {
        SOCKETS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(address.clone());
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| crate::sys::at_exit(remove_sockets));
    }
    Some(server)
}

/// Gives every child `SKPROCESS_LOGS`, through the spawn path's [`CHILD_ENVIRONMENT`].
#[linkme::distributed_slice(CHILD_ENVIRONMENT)]
static LOGS_VARIABLE: ChildEnvironment =
    |config: &Config| child_variable(config.socket_dir.as_deref()).map(|value| (ENV_LOGS, value));

/// The value of `SKPROCESS_LOGS` for a child spawned with `socket_dir`: `<token>:<address>`
/// of the collector for that directory.
fn child_variable(socket_dir: Option<&Path>) -> Option<String> {
    let mut collectors = COLLECTORS.lock().unwrap_or_else(PoisonError::into_inner);
    let index = match collectors
        .iter()
        .position(|(dir, _)| dir.as_deref() == socket_dir)
    {
        Some(index) => index,
        None => {
            let server = start_collector(socket_dir);
            collectors.push((socket_dir.map(Path::to_path_buf), server));
            collectors.len() - 1
        }
    };
    let endpoint = collectors.get(index)?.1.as_ref()?.endpoint();
    Some(format!("{}:{}", endpoint.token, endpoint.address.display()))
}

/// One child's records.
struct ChildLogs {
    /// The child's pid as the kernel gives it (not recorded where the OS does not say).
    pid: Option<u32>,
    process: String,
}

impl Session for ChildLogs {
    fn on_frame(&mut self, _peer: &Peer, frame: &[u8]) -> Flow {
        match frame::decode::<LogMessage>(frame) {
            Ok(LogMessage::Hello { process }) => self.process = process,
            Ok(LogMessage::Record(record)) => emit(&record, self.pid, &self.process),
            // Something malformed: stop reading this child.
            Err(_) => return Flow::Close,
        }
        Flow::Continue
    }
}

/// Re-emits a child's record in this process, for its subscriber.
fn emit(record: &LogRecord, pid: Option<u32>, process: &str) {
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
