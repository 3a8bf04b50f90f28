//! Worker processes, the parent side: starting one (the one spawn path, then the build check
//! and its `Ready`, with the page in which the worker keeps the item it holds), its link for
//! the dispatcher, and its reader, which turns frames into events and has the one reaper reap
//! the process when its connection ends (then it reports what the page says).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::parent::output::Sink;
use crate::parent::reaper::ChildProcess;
use crate::parent::spawn::{Launch, Spawned, Ungated};
use crate::pool::dispatcher::{Event, EventSender, Launcher, Report, WorkerLink};
use crate::pool::function;
use crate::pool::in_hand::InHand;
use crate::pool::results::ResultsFrame;
use crate::pool::scheduler::{ChunkItems, JobId, Task, WorkerId};
use crate::pool::writer::ChunkWriter;
use crate::protocol::Role;
use crate::protocol::lifecycle::Resume;
use crate::protocol::pool::{Reporting, ToPool, WorkerStart};
use crate::timing::monotonic_instant;
use crate::transport::Connection;
use crate::transport::error::TransportError;
use crate::transport::frame::{self, FrameReader};
use crate::transport::region::{FrameSource, RegionReader};

/// How long a worker whose connection ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Starts worker processes of this executable.
pub(crate) struct ProcessLauncher {
    /// How each worker is spawned: frame limit, connect timeout, socket directory and the
    /// pool's child setup.
    pub(crate) config: Config,
    /// Where the workers' captured or logged output goes.
    pub(crate) sink: Sink,
}

impl Launcher for ProcessLauncher {
    fn launch(&self, worker: WorkerId, events: EventSender) {
        let (config, sink) = (self.config.clone(), self.sink.clone());
        let started = std::thread::Builder::new()
            .name("skprocess-pool-worker".into())
            .spawn({
                let events = events.clone();
                move || start_and_read(worker, &config, sink, &events)
            });
        if let Err(e) = started {
            let _ = events.send(Event::Started(worker, Err(Error::Io(e))));
        }
    }
}

/// The worker's thread: starts it, then reads its reports until it ends.
fn start_and_read(worker: WorkerId, config: &Config, sink: Sink, events: &EventSender) {
    let started = start_with_page(Role::PoolWorker, config, sink);
    let ((connection, reader, child), in_hand) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = events.send(Event::Started(worker, Err(error)));
            return;
        }
    };
    let Some(writer) = ChunkWriter::start(Arc::clone(&connection), {
        let child = Arc::clone(&child);
        move || child.kill()
    }) else {
        child.kill_and_reap();
        let no_thread = Error::Io(std::io::Error::other("no thread for the worker's writer"));
        let _ = events.send(Event::Started(worker, Err(no_thread)));
        return;
    };
    let link = ProcessLink {
        connection: Arc::clone(&connection),
        writer,
        child: Arc::clone(&child),
    };
    if events
        .send(Event::Started(worker, Ok(Box::new(link))))
        .is_err()
    {
        child.kill();
    }
    if read_reports(worker, &connection, reader, events).is_some() {
        child.kill();
    }
    let status = child.reap(EXIT_GRACE).describe();
    // Reaped: the page holds what the worker last stored, the item it died holding.
    if let Some(in_hand) = in_hand {
        let report = Report::InHand(in_hand.last_started());
        let _ = events.send(Event::Report(worker, report));
    }
    let _ = events.send(Event::Ended(worker, status));
}

/// Started worker: its connection, the reader positioned after its `Ready`, its process.
pub(crate) type StartedWorker = (Arc<Connection>, FrameReader, Arc<ChildProcess>);

/// Starts one worker in `role` (a pool worker or a resident worker) through the one spawn
/// path, set up as `config.setup` says (its captured or logged output going to `sink`), with
/// this build's identity in its start, and waits for its `Ready`.
pub(crate) fn start(role: Role, config: &Config, sink: Sink) -> Result<StartedWorker, Error> {
    start_with_page(role, config, sink).map(|(started, _)| started)
}

/// [`start`], with the page in which a pool worker keeps the item it holds, if it sent one
/// (a pool's worker is asked for one; a resident worker is not).
fn start_with_page(
    role: Role,
    config: &Config,
    sink: Sink,
) -> Result<(StartedWorker, Option<InHand>), Error> {
    let spawned = Spawned::start(config, &Ungated(sink))?;
    let in_hand = role == Role::PoolWorker;
    finish_with_page((spawned, in_hand), role, config, |_| Ok(()))
}

/// The second half of [`start`]: the worker's connection and start, then `first` (which may
/// send the worker its first work before it answered: a worker reads nothing past a start it
/// refuses, so nothing runs on a build that is not this one), then its `Ready`.
pub(crate) fn finish(
    spawned: Spawned,
    role: Role,
    config: &Config,
    first: impl FnOnce(&Connection) -> Result<(), Error>,
) -> Result<StartedWorker, Error> {
    finish_with_page((spawned, false), role, config, first).map(|(started, _)| started)
}

/// [`finish`], asking the worker for an [`InHand`] page when `in_hand` (only a pool's
/// worker is asked), with the page when it sent one with its `Ready`.
fn finish_with_page(
    (spawned, in_hand): (Spawned, bool),
    role: Role,
    config: &Config,
    first: impl FnOnce(&Connection) -> Result<(), Error>,
) -> Result<(StartedWorker, Option<InHand>), Error> {
    let build = frame::encode(&WorkerStart {
        build: function::build_identity().to_vec(),
        in_hand,
    })?;
    let launch = Launch {
        role,
        key: "",
        state: &build,
        config,
        resume: Resume::default(),
        timers: None,
    };
    let (connection, child) = spawned.connect(&launch, &Ungated(Sink::default()))?;
    let limit = config.connect_timeout;
    let sent = first(&connection);
    // Read the answer even when `first` failed: a refusal says why better than the write.
    let ready = await_ready(&connection, config.max_frame_bytes, limit)
        .and_then(|reader| sent.map(|()| reader));
    match ready {
        Ok((reader, in_hand)) => Ok(((Arc::new(connection), reader, child), in_hand)),
        Err(error) => {
            child.kill_and_reap();
            Err(error)
        }
    }
}

/// Waits up to `limit` (`Duration::MAX`: without one) for a started worker's `Ready` (its
/// build matched); the reader positioned after it, and the [`InHand`] page that came with it,
/// if one did. A worker that has not answered by then is a start that timed out, said in words
/// (the read's own error is a bare "would block").
fn await_ready(
    connection: &Connection,
    max_frame: u32,
    limit: Duration,
) -> Result<(FrameReader, Option<InHand>), Error> {
    let mut reader = FrameReader::new(max_frame);
    let deadline = crate::deadline::after(Some(limit));
    let region = Mutex::new(None);
    let mut source = RegionReader::new(connection.stream(), &region);
    // The page comes beside `Ready`'s bytes, or as a record frame ahead of it (Windows).
    let ready = loop {
        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let frame = connection.read_frame_within_from(&mut source, &mut reader, wait, |frame| {
            frame.map(|frame| frame.bytes().to_vec())
        });
        let bytes = match frame {
            Err(TransportError::Wire(e)) if e.is_timeout() => {
                return Err(Error::Bootstrap {
                    detail: format!(
                        "a pool worker did not say it was ready within {limit:?} (Config::connect_timeout)"
                    ),
                });
            }
            Err(e) => return Err(e.into()),
            Ok(None) => {
                return Err(Error::Bootstrap {
                    detail: "a pool worker closed its connection before it was ready".into(),
                });
            }
            Ok(Some(bytes)) => bytes,
        };
        match source.take_record(&bytes) {
            Ok(true) => continue,
            Ok(false) => break bytes,
            Err(e) => {
                return Err(Error::Bootstrap {
                    detail: format!("a pool worker handed over no usable shared page: {e}"),
                });
            }
        }
    };
    match frame::decode::<ToPool<'_>>(&ready)? {
        ToPool::Ready => {}
        ToPool::Refused(reason) => return Err(Error::WorkerRefused { reason }),
        _ => {
            return Err(Error::Bootstrap {
                detail: "a pool worker answered its start with something else than ready".into(),
            });
        }
    }
    // A page that does not map (not a sealed region of a page) is ignored: the crash of such
    // a worker is then pinned as well as its reports allow.
    let region = region.into_inner().unwrap_or_else(PoisonError::into_inner);
    let in_hand = region.and_then(|fd| InHand::attach(fd).ok());
    Ok((reader, in_hand))
}

/// Reads a worker's reports until its connection ends; returns why it must be killed, when
/// it broke the protocol (or the pool is gone).
fn read_reports(
    worker: WorkerId,
    connection: &Connection,
    mut reader: FrameReader,
    events: &EventSender,
) -> Option<String> {
    loop {
        let frame = match reader.read_frame(&mut connection.stream()) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        };
        // One copy of the frame, kept whole on its way to the caller.
        let shared: Arc<[u8]> = Arc::from(frame.bytes());
        let report = match ResultsFrame::read(Arc::clone(&shared)) {
            Some(Ok(read)) => Report::Frame {
                job: read.job,
                indices: read.indices,
                frame: read.frame,
                measured: read.measured,
            },
            Some(Err(e)) => return Some(e.to_string()),
            None => match frame::decode::<ToPool<'_>>(&shared) {
                Ok(ToPool::Running {
                    job,
                    index,
                    started_nanos,
                    spent,
                }) => Report::Running {
                    job,
                    index,
                    since: monotonic_instant(started_nanos),
                    spent,
                },
                Ok(ToPool::Released { next }) => Report::Released { next },
                Ok(_) => return Some("an unexpected message".into()),
                Err(e) => return Some(e.to_string()),
            },
        };
        if events.send(Event::Report(worker, report)).is_err() {
            return Some("the pool is gone".into());
        }
    }
}

/// The dispatcher's link to a worker process.
struct ProcessLink {
    connection: Arc<Connection>,
    /// Writes chunks on a thread of its own, so a stopped worker never blocks the dispatcher.
    writer: ChunkWriter,
    child: Arc<ChildProcess>,
}

impl WorkerLink for ProcessLink {
    fn send_chunk(&self, job: JobId, task: Task, reporting: Reporting, items: ChunkItems<'_>) {
        // A chunk that cannot be encoded or taken (a full queue, a failed write: the worker
        // is dying or broke the protocol) ends the worker: kill it, its end settles its items.
        if !self.writer.chunk(job, task, reporting, items) {
            self.child.kill();
        }
    }

    fn release(&self) {
        if !self.writer.release() {
            self.child.kill();
        }
    }

    fn kill(&self) {
        self.child.kill();
    }

    fn stop(&self) {
        self.connection.shutdown();
    }

    fn pid(&self) -> Option<u32> {
        (!self.child.has_exited()).then(|| self.child.pid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Stream;

    /// A worker that never answers its start is a start that timed out, in words that say
    /// so; before, the read's own error came through ("operation would block", seen under
    /// Wine when a loaded machine started workers slowly).
    #[test]
    fn a_worker_that_never_says_ready_is_a_timeout_in_words() {
        let (ours, _worker) = Stream::pair().unwrap();
        let connection = Connection::new(ours, 64 * 1024).unwrap();
        let limit = Duration::from_millis(50);
        let error = await_ready(&connection, 64 * 1024, limit).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("did not say it was ready within 50ms"),
            "{text}"
        );
    }
}
