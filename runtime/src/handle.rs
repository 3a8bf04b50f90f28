//! The parent's handle on a running process.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Stream as _;

use crate::child::{self, ENV_ADDRESS, ENV_MAX_FRAME, ENV_TOKEN, EXIT_NO_ENTRY_HOOK};
use crate::config::Config;
use crate::error::{Error, FailureReport};
use crate::process::Process;
use crate::transport::{self, Rendezvous};
use crate::wire::{self, FrameReader, StartPayload, ToChild, ToParent, WireError};

/// Longest single blocking read, so that threads sharing a handle take turns.
const READ_SLICE: Duration = Duration::from_millis(20);
/// Most frames `current_run` reads to catch up with the child.
const CATCH_UP_FRAMES: usize = 16;
/// How long dropping a finished handle lets the child exit by itself before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How the child ended its lifecycle, as reported over the wire.
enum Terminal {
    Finished(Vec<u8>),
    Failed(FailureReport),
    Setup(Error),
}

/// Everything read from the child so far.
struct Inbound {
    reader: FrameReader,
    read_timeout: Option<Duration>,
    outbox: VecDeque<Vec<u8>>,
    terminal: Option<Terminal>,
    closed: bool,
}

/// A process running in a child. Dropping the handle kills a child that is still running.
pub struct Handle<P: Process> {
    stream: Stream,
    child: Mutex<Child>,
    pid: u32,
    inbound: Mutex<Inbound>,
    send_lock: Mutex<()>,
    completed_runs: AtomicU64,
    killed: AtomicBool,
    max_frame: u32,
    _process: PhantomData<fn() -> P>,
}

impl<P: Process> Handle<P> {
    /// Spawns a child, authenticates it and hands it the process. See [`Process::start_with`].
    pub(crate) fn spawn(process: P, config: Config) -> Result<Self, Error> {
        child::forbid_unhooked_child();
        validate(&config)?;
        let state = wire::encode(&process)?;
        let token = transport::random_hex(16)?;
        let rendezvous = Rendezvous::bind(config.socket_dir.as_deref())?;
        let mut child = spawn_child(rendezvous.address(), &token, config.max_frame_bytes)?;
        let max_frame = config.max_frame_bytes;
        let stream = rendezvous
            .accept(&token, max_frame, config.connect_timeout, &mut child)
            .map_err(|e| explain_bootstrap(e, &mut child));
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => return Err(reap_after_failure(&mut child, e)),
        };
        let start = ToChild::Start(StartPayload {
            key: P::KEY.to_owned(),
            state,
            config,
        });
        if let Err(e) = wire::write_message(&stream, &start, max_frame) {
            return Err(reap_after_failure(&mut child, e.into()));
        }
        Ok(Self::new(stream, child, max_frame))
    }

    fn new(stream: Stream, child: Child, max_frame: u32) -> Self {
        Self {
            stream,
            pid: child.id(),
            child: Mutex::new(child),
            inbound: Mutex::new(Inbound {
                reader: FrameReader::new(max_frame),
                read_timeout: None,
                outbox: VecDeque::new(),
                terminal: None,
                closed: false,
            }),
            send_lock: Mutex::new(()),
            completed_runs: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            max_frame,
            _process: PhantomData,
        }
    }

    /// The child's OS process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends a message the child reads with [`Ctx::listen`](crate::Ctx::listen).
    pub fn tell(&self, message: P::Inbox) -> Result<(), Error> {
        let payload = wire::encode(&message)?;
        self.send(&ToChild::Tell(payload))
    }

    /// Waits up to `timeout` (`None`: until one arrives) for a message from the child.
    ///
    /// `Ok(None)` means the time ran out; [`Error::Disconnected`] means the child is gone and
    /// every message it sent has been read.
    pub fn listen(&self, timeout: impl Into<Option<Duration>>) -> Result<Option<P::Outbox>, Error> {
        let deadline = deadline_after(timeout.into());
        let mut inbound = self.lock_inbound();
        loop {
            if let Some(bytes) = inbound.outbox.pop_front() {
                return Ok(Some(wire::decode(&bytes)?));
            }
            if inbound.closed {
                return Err(Error::Disconnected);
            }
            if past(deadline) {
                return Ok(None);
            }
            inbound = self.pump(inbound, deadline)?;
        }
    }

    /// Asks the child to finish: its current hook completes, then `onfinish` and `result` run.
    /// Does nothing if the child has already exited.
    pub fn stop(&self) -> Result<(), Error> {
        match self.send(&ToChild::Stop) {
            Err(Error::Disconnected) => Ok(()),
            other => other,
        }
    }

    /// Kills the child at once; no further hook runs and [`result`](Handle::result) returns
    /// [`Error::Killed`]. Does nothing if the child has already exited.
    pub fn kill(&self) -> Result<(), Error> {
        let mut child = self.lock_child();
        if child.try_wait()?.is_none() {
            self.killed.store(true, Ordering::SeqCst);
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Whether the child process is still running.
    pub fn is_alive(&self) -> bool {
        matches!(self.lock_child().try_wait(), Ok(None))
    }

    /// The number of iterations the child has completed, as last reported.
    pub fn current_run(&self) -> u64 {
        if let Ok(mut inbound) = self.inbound.try_lock() {
            // Drain what has already arrived; another thread holding the lock is reading anyway.
            for _ in 0..CATCH_UP_FRAMES {
                match self.pump(inbound, Some(Instant::now())) {
                    Ok(next) => inbound = next,
                    Err(_) => break,
                }
            }
        }
        self.completed_runs.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` (`None`: without limit) for the child to exit; returns whether it has.
    ///
    /// Messages the child sends meanwhile are kept for [`listen`](Handle::listen).
    pub fn wait(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let deadline = deadline_after(timeout.into());
        if !self.read_until(deadline, |inbound| inbound.closed) {
            return false;
        }
        self.reap(deadline).is_some()
    }

    /// Waits for the lifecycle to end and returns the output of the `result` hook.
    ///
    /// Unread messages are dropped with the handle; read them with [`listen`](Handle::listen) first.
    pub fn result(self) -> Result<P::Output, Error> {
        self.read_until(None, |inbound| inbound.terminal.is_some() || inbound.closed);
        let terminal = self.lock_inbound().terminal.take();
        match terminal {
            Some(Terminal::Finished(bytes)) => Ok(wire::decode(&bytes)?),
            Some(Terminal::Failed(report)) => Err(report.into()),
            Some(Terminal::Setup(error)) => Err(error),
            None => Err(self.ended_without_result()),
        }
    }

    /// Explains a child that closed the connection without a terminal message.
    fn ended_without_result(&self) -> Error {
        if self.killed.load(Ordering::SeqCst) {
            return Error::Killed;
        }
        match self.reap(None) {
            Some(status) => Error::Crashed {
                status: describe_exit(status),
                run: self.completed_runs.load(Ordering::SeqCst),
            },
            None => Error::Disconnected,
        }
    }

    /// Reads frames until `done` holds or the deadline passes; returns whether `done` holds.
    fn read_until(&self, deadline: Option<Instant>, done: impl Fn(&Inbound) -> bool) -> bool {
        let mut inbound = self.lock_inbound();
        while !done(&inbound) {
            if past(deadline) {
                return false;
            }
            inbound = match self.pump(inbound, deadline) {
                Ok(inbound) => inbound,
                Err(_) => return done(&self.lock_inbound()),
            };
        }
        true
    }

    /// Reads at most one frame, waiting no later than `deadline` and no longer than a slice.
    fn pump<'a>(
        &'a self,
        mut inbound: MutexGuard<'a, Inbound>,
        deadline: Option<Instant>,
    ) -> Result<MutexGuard<'a, Inbound>, Error> {
        if inbound.closed {
            return Ok(inbound);
        }
        let slice = deadline.map_or(READ_SLICE, |d| {
            d.saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(1), READ_SLICE)
        });
        if inbound.read_timeout != Some(slice) {
            self.stream.set_recv_timeout(Some(slice))?;
            inbound.read_timeout = Some(slice);
        }
        let read = inbound.reader.read_message(&mut &self.stream);
        match read {
            Ok(Some(message)) => self.accept(&mut inbound, message),
            Ok(None) => inbound.closed = true,
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(self.broken(&mut inbound, e)),
        }
        Ok(inbound)
    }

    /// Records one message from the child.
    fn accept(&self, inbound: &mut Inbound, message: ToParent) {
        match message {
            ToParent::Tell(bytes) => inbound.outbox.push_back(bytes),
            ToParent::Progress { completed_runs } => {
                self.completed_runs.store(completed_runs, Ordering::SeqCst)
            }
            ToParent::Finished {
                output,
                completed_runs,
            } => {
                self.completed_runs.store(completed_runs, Ordering::SeqCst);
                inbound.terminal = Some(Terminal::Finished(output));
            }
            ToParent::Failed(report) => inbound.terminal = Some(Terminal::Failed(report)),
            ToParent::UnknownType(key) => {
                inbound.terminal = Some(Terminal::Setup(Error::UnknownType(key)))
            }
            ToParent::SetupFailed(detail) => {
                inbound.terminal = Some(Terminal::Setup(Error::Wire(WireError::Malformed(detail))))
            }
            ToParent::Hello { .. } => {}
        }
    }

    /// A malformed stream cannot be resynchronised: stop the child and report why.
    fn broken(&self, inbound: &mut Inbound, error: WireError) -> Error {
        inbound.closed = true;
        let message = error.to_string();
        inbound
            .terminal
            .get_or_insert(Terminal::Setup(Error::Wire(WireError::Malformed(message))));
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
        error.into()
    }

    /// Waits for the child to exit, no later than `deadline`.
    fn reap(&self, deadline: Option<Instant>) -> Option<ExitStatus> {
        let mut backoff = Duration::from_micros(20);
        loop {
            if let Ok(Some(status)) = self.lock_child().try_wait() {
                return Some(status);
            }
            if past(deadline) {
                return None;
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
        }
    }

    fn send(&self, message: &ToChild) -> Result<(), Error> {
        let _guard = self.send_lock.lock().unwrap_or_else(PoisonError::into_inner);
        wire::write_message(&self.stream, message, self.max_frame).map_err(|e| match e {
            WireError::Io(_) => Error::Disconnected,
            other => other.into(),
        })
    }

    fn lock_inbound(&self) -> MutexGuard<'_, Inbound> {
        self.inbound.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: Process> Drop for Handle<P> {
    fn drop(&mut self) {
        let finished = self.lock_inbound().terminal.is_some();
        if finished && self.reap(Some(Instant::now() + EXIT_GRACE)).is_some() {
            return;
        }
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl<P: Process> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("process", &P::KEY)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

fn validate(config: &Config) -> Result<(), Error> {
    if config.max_frame_bytes < 1024 {
        return Err(Error::Config(format!(
            "`max_frame_bytes` must be at least 1024, got {}",
            config.max_frame_bytes
        )));
    }
    Ok(())
}

fn spawn_child(address: &str, token: &str, max_frame: u32) -> Result<Child, Error> {
    let exe = std::env::current_exe().map_err(Error::Spawn)?;
    Command::new(exe)
        .env(ENV_ADDRESS, address)
        .env(ENV_TOKEN, token)
        .env(ENV_MAX_FRAME, max_frame.to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(Error::Spawn)
}

/// Adds what the exit code says to a bootstrap failure.
fn explain_bootstrap(error: Error, child: &mut Child) -> Error {
    let Error::Bootstrap { detail } = error else {
        return error;
    };
    let unhooked = matches!(child.try_wait(), Ok(Some(s)) if s.code() == Some(EXIT_NO_ENTRY_HOOK));
    let detail = if unhooked {
        format!("{detail}: it reached user code without the entry hook")
    } else {
        detail
    };
    Error::Bootstrap { detail }
}

fn reap_after_failure(child: &mut Child, error: Error) -> Error {
    let _ = child.kill();
    let _ = child.wait();
    error
}

fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Describes an exit status, naming the signal on Unix.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}{}", signal_name(signal));
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => status.to_string(),
    }
}

#[cfg(unix)]
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        _ => "",
    }
}
