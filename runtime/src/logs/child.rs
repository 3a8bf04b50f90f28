//! The child's side: a `tracing` subscriber and a `log` logger that forward every record.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing::{Event, Metadata, Subscriber};

use super::{ENV_LOGS, LogMessage, LogRecord, level_number};
use crate::transport::Connection;
use crate::transport::clients::Clients;
use crate::transport::server;
use crate::transport::service::Endpoint;

const MAX_FRAME: u32 = 1024 * 1024;

/// Where records go: the parent's collector, connected at the first record (a child that
/// never logs opens no connection).
struct Sink {
    endpoint: Endpoint,
    process: String,
    /// The connection to the collector, in the runtime's one client cache.
    collector: Mutex<Clients<Connection>>,
    /// The collector could not be reached or went away: records are dropped from then on, so a
    /// child whose parent is going (or whose collector is full) does not try again per record.
    gone: AtomicBool,
}

impl Sink {
    fn send(&self, record: LogRecord) {
        let mut collector = self
            .collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        let sent = collector.with(
            &self.endpoint,
            |endpoint| self.connect(endpoint),
            |connection| {
                connection
                    .send(&LogMessage::Record(record))
                    .map_err(|_| Lost)
            },
            |Lost| true,
        );
        if sent.is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
    }

    fn connect(&self, endpoint: &Endpoint) -> Result<Connection, Lost> {
        let connection = server::connect(endpoint, MAX_FRAME).map_err(|_| Lost)?;
        let hello = LogMessage::Hello {
            process: self.process.clone(),
        };
        connection.send(&hello).map_err(|_| Lost)?;
        Ok(connection)
    }
}

/// The collector could not be reached, or its connection broke.
struct Lost;

/// Connects to the parent's collector and installs the forwarders, when the parent asked for
/// it. Removes the variable so nothing the child starts inherits it.
pub(crate) fn install(process: &str) {
    let Some(value) = std::env::var_os(ENV_LOGS) else {
        return;
    };
    // SAFETY: called by the bootstrap on the child's main thread before any user code runs,
    // when no other thread reads the environment.
    unsafe { std::env::remove_var(ENV_LOGS) };
    let Some(endpoint) = value.to_str().and_then(parse_endpoint) else {
        return;
    };
    let sink = Arc::new(Sink {
        endpoint,
        process: process.to_owned(),
        collector: Mutex::new(Clients::new()),
        gone: AtomicBool::new(false),
    });
    let _ = tracing::subscriber::set_global_default(Forwarder {
        sink: Arc::clone(&sink),
        next_span: AtomicU64::new(1),
    });
    if log::set_boxed_logger(Box::new(LogForwarder { sink })).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// `<token>:<address>`.
pub(crate) fn parse_endpoint(value: &str) -> Option<Endpoint> {
    let (token, address) = value.split_once(':')?;
    Some(Endpoint {
        address: address.into(),
        token: token.to_owned(),
    })
}

/// Forwards events; spans are accepted and ignored (their fields are not forwarded).
struct Forwarder {
    sink: Arc<Sink>,
    next_span: AtomicU64,
}

impl Subscriber for Forwarder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        self.sink.send(LogRecord {
            level: level_number(metadata.level()),
            target: metadata.target().to_owned(),
            message: fields.message,
            fields: fields.rest,
        });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, format_args!("{value:?}"));
        }
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let _ = write!(self.rest, "{}={}", field.name(), value);
    }
}

struct LogForwarder {
    sink: Arc<Sink>,
}

impl log::Log for LogForwarder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => 1,
            log::Level::Warn => 2,
            log::Level::Info => 3,
            log::Level::Debug => 4,
            log::Level::Trace => 5,
        };
        self.sink.send(LogRecord {
            level,
            target: record.target().to_owned(),
            message: record.args().to_string(),
            fields: String::new(),
        });
    }

    fn flush(&self) {}
}
