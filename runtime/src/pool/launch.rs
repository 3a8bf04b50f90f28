//! Worker processes, the parent side: starting one (re-execute, token, start message, build
//! check), its link for the dispatcher, and its reader, which turns frames into events and
//! reaps the process when its connection ends.

use std::process::Child;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::parent::exit;
use crate::parent::spawn::command;
use crate::pool::dispatcher::{Event, Launcher, Report, WorkerLink};
use crate::pool::function;
use crate::pool::scheduler::{Item, JobId, Task, WorkerId};
use crate::pool::shared_bytes::SharedBytes;
use crate::pool::writer::ChunkWriter;
use crate::protocol::lifecycle::Resume;
use crate::protocol::pool::{Chunk, TaskRef, ToPool, WireItem, WireOutcome, WorkerStart};
use crate::protocol::{Role, Start};
use crate::timing::monotonic_instant;
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::rendezvous::{self, Rendezvous};

/// How long a worker whose connection ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Starts worker processes of this executable.
pub(crate) struct ProcessLauncher {
    pub(crate) max_frame_bytes: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) socket_dir: Option<std::path::PathBuf>,
}

impl Launcher for ProcessLauncher {
    fn launch(&self, worker: WorkerId, events: Sender<Event>) {
        let settings = (
            self.max_frame_bytes,
            self.connect_timeout,
            self.socket_dir.clone(),
        );
        let started = std::thread::Builder::new()
            .name("skprocess-pool-worker".into())
            .spawn({
                let events = events.clone();
                move || start_and_read(worker, settings, &events)
            });
        if let Err(e) = started {
            let _ = events.send(Event::Started(worker, Err(Error::Io(e))));
        }
    }
}

/// The worker's thread: starts it, then reads its reports until it ends.
fn start_and_read(
    worker: WorkerId,
    (max_frame, connect_timeout, socket_dir): (u32, Duration, Option<std::path::PathBuf>),
    events: &Sender<Event>,
) {
    let started = start(max_frame, connect_timeout, socket_dir.as_deref());
    let (connection, reader, child) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = events.send(Event::Started(worker, Err(error)));
            return;
        }
    };
    let child = Arc::new(Mutex::new(Some(child)));
    let Some(writer) = ChunkWriter::start(Arc::clone(&connection), {
        let child = Arc::clone(&child);
        move || kill(&child)
    }) else {
        kill(&child);
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
        kill(&child);
    }
    if read_reports(worker, &connection, reader, events).is_some() {
        kill(&child);
    }
    let status = reap(&child);
    let _ = events.send(Event::Ended(worker, status));
}

/// Starts one worker and waits for its `Ready`.
fn start(
    max_frame: u32,
    connect_timeout: Duration,
    socket_dir: Option<&std::path::Path>,
) -> Result<(Arc<Connection>, FrameReader, Child), Error> {
    let token = rendezvous::random_hex(16)?;
    let rendezvous = Rendezvous::bind(socket_dir)?;
    let mut child = command(&rendezvous, &token, max_frame, None)?
        .spawn()
        .map_err(Error::Spawn)?;
    let deadline = crate::deadline::after(Some(connect_timeout));
    let pid = child.id();
    let exited = || child.try_wait().ok()?;
    let handshake = handshake(
        rendezvous,
        &token,
        max_frame,
        deadline,
        (Role::PoolWorker, pid),
        exited,
    );
    match handshake {
        Ok((connection, reader)) => Ok((connection, reader, child)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// Accepts the worker `pid` started with `token`, sends it its start in `role` with this
/// build's identity, and waits for its `Ready`; `exited` tells whether it died meanwhile.
pub(crate) fn handshake(
    mut rendezvous: Rendezvous,
    token: &str,
    max_frame: u32,
    deadline: Option<Instant>,
    (role, pid): (Role, u32),
    mut exited: impl FnMut() -> Option<std::process::ExitStatus>,
) -> Result<(Arc<Connection>, FrameReader), Error> {
    // Only the worker itself, by the kernel's word, is accepted; another process that proves
    // the token is dropped and the wait goes on.
    let (connection, _) = rendezvous.accept_child(pid, token, max_frame, deadline, || {
        let status = exited()?;
        Some(Error::Bootstrap {
            detail: format!(
                "a pool worker {} before connecting",
                exit::describe_status(status)
            ),
        })
    })?;
    let build = frame::encode(&WorkerStart {
        build: function::build_identity().to_vec(),
    })?;
    connection.send(&Start {
        proof: crate::protocol::parent_proof(token),
        role,
        key: "",
        state: &build,
        config: Config::default().max_frame_bytes(max_frame),
        resume: Resume::default(),
        sample_frames: 0,
    })?;
    let mut reader = FrameReader::new(max_frame);
    let wait = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    connection.stream().set_read_timeout(wait)?;
    let answer = match reader.read_frame(&mut connection.stream())? {
        None => Err(Error::Bootstrap {
            detail: "a pool worker closed its connection before it was ready".into(),
        }),
        Some(frame) => match frame::decode::<ToPool<'_>>(frame.bytes())? {
            ToPool::Ready => Ok(()),
            ToPool::Refused(reason) => Err(Error::WorkerRefused(reason)),
            _ => Err(Error::Bootstrap {
                detail: "a pool worker answered its start with something else than ready".into(),
            }),
        },
    };
    answer?;
    connection.stream().set_read_timeout(None)?;
    Ok((Arc::new(connection), reader))
}

/// Reads a worker's reports until its connection ends; returns why it must be killed, when
/// it broke the protocol (or the pool is gone).
fn read_reports(
    worker: WorkerId,
    connection: &Connection,
    mut reader: FrameReader,
    events: &Sender<Event>,
) -> Option<String> {
    loop {
        let frame = match reader.read_frame(&mut connection.stream()) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        };
        // One copy of the frame, shared by every output in it.
        let shared: Arc<[u8]> = Arc::from(frame.bytes());
        let report = match frame::decode::<ToPool<'_>>(&shared) {
            Ok(ToPool::Results {
                job,
                results,
                measured,
            }) => Report::Results {
                job,
                measured,
                results: results
                    .into_iter()
                    .map(|r| match r.outcome {
                        WireOutcome::Output(bytes) => {
                            let range = SharedBytes::range_in(&shared, bytes).unwrap_or(0..0);
                            (r.index, Ok(SharedBytes::new(Arc::clone(&shared), range)))
                        }
                        WireOutcome::Failed(failure) => (r.index, Err(failure)),
                    })
                    .collect(),
            },
            Ok(ToPool::Running {
                job,
                index,
                started_nanos,
            }) => Report::Running {
                job,
                index,
                since: monotonic_instant(started_nanos),
            },
            Ok(_) => return Some("an unexpected message".into()),
            Err(e) => return Some(e.to_string()),
        };
        if events.send(Event::Report(worker, report)).is_err() {
            return Some("the pool is gone".into());
        }
    }
}

pub(crate) fn lock(child: &Mutex<Option<Child>>) -> MutexGuard<'_, Option<Child>> {
    child.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn kill(child: &Mutex<Option<Child>>) {
    if let Some(child) = lock(child).as_mut() {
        let _ = child.kill();
    }
}

/// Reaps the worker, killing it if it does not exit within [`EXIT_GRACE`] of its connection
/// ending; describes how it ended.
pub(crate) fn reap(child: &Mutex<Option<Child>>) -> String {
    let deadline = Instant::now().checked_add(EXIT_GRACE);
    loop {
        let mut slot = lock(child);
        let Some(process) = slot.as_mut() else {
            return "ended; its exit status is unknown".into();
        };
        match process.try_wait() {
            Ok(Some(status)) => {
                slot.take();
                return exit::describe_status(status);
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() < d) => {}
            Ok(None) => {
                let _ = process.kill();
            }
            Err(_) => return "ended; its exit status is unknown".into(),
        }
        drop(slot);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The dispatcher's link to a worker process.
struct ProcessLink {
    connection: Arc<Connection>,
    /// Writes chunks on a thread of its own, so a stopped worker never blocks the dispatcher.
    writer: ChunkWriter,
    child: Arc<Mutex<Option<Child>>>,
}

impl WorkerLink for ProcessLink {
    fn send_chunk(&self, job: JobId, task: Task, isolated: bool, items: &[Item]) {
        let task = match task {
            Task::Function { offset } => TaskRef::Function { offset },
            Task::Process { key } => TaskRef::Process { key },
        };
        let chunk = Chunk {
            job,
            task,
            isolated,
            items: items
                .iter()
                .map(|item| WireItem {
                    index: item.index,
                    bytes: &item.bytes,
                })
                .collect(),
        };
        // A chunk that cannot be encoded or taken (a full queue, a failed write: the worker
        // is dying or broke the protocol) ends the worker: kill it, its end settles its items.
        let written = frame::encode(&chunk).is_ok_and(|encoded| self.writer.write(encoded));
        if !written {
            kill(&self.child);
        }
    }

    fn kill(&self) {
        kill(&self.child);
    }

    fn stop(&self) {
        self.connection.shutdown();
    }

    fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().map(Child::id)
    }
}
