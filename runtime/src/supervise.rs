//! The parent's side of one process: reading the child, and restarting it after a crash or a
//! timeout while lives remain.
//!
//! There is no reader thread for a plain process: calls that need the child's messages read the
//! socket themselves under a lock, in slices so threads sharing a handle take turns, and keep
//! what they read for the others. A process that can be restarted (more than one life, or a
//! hook timeout) also gets a supervisor thread that reads whenever no caller is, so a crash is
//! noticed and recovered at once.

use std::collections::VecDeque;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Stream as _;

use crate::child::{ENV_ADDRESS, ENV_MAX_FRAME, ENV_TOKEN, EXIT_NO_ENTRY_HOOK};
use crate::config::Config;
use crate::error::{Error, Failure, Hook};
use crate::timing::ProcessTimers;
use crate::transport::{self, Rendezvous};
use crate::watchdog::EXIT_TIMED_OUT;
use crate::wire::{self, FrameReader, Resume, StartPayload, ToChild, ToParent, Usage, WireError};

/// Longest single blocking read, so that threads sharing a handle take turns.
const READ_SLICE: Duration = Duration::from_millis(20);
/// The supervisor's read slice: short, so callers wait little for the lock.
const SUPERVISOR_SLICE: Duration = Duration::from_millis(5);
/// How long past a hook's limit the parent waits for the child's own watchdog before it kills
/// the child itself.
const BACKSTOP_GRACE: Duration = Duration::from_millis(200);
/// How long a child that closed its connection may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How the lifecycle ended, as far as the parent knows.
pub(crate) enum Terminal {
    Finished(Vec<u8>),
    Failed(Failure),
    Setup(Error),
}

/// Everything read from the child so far.
pub(crate) struct Inbound {
    reader: FrameReader,
    read_timeout: Option<Duration>,
    pub(crate) outbox: VecDeque<Vec<u8>>,
    pub(crate) terminal: Option<Terminal>,
    pub(crate) closed: bool,
    pub(crate) timers: Option<ProcessTimers>,
    checkpoint: Checkpoint,
    timed_out: Option<Failure>,
    /// When the hook the child reported running must be over, and the failure if it is not.
    hook_deadline: Option<(Instant, Failure)>,
    finishing: bool,
    handling_error: Option<Failure>,
}

/// The last state the child reported after a completed iteration.
struct Checkpoint {
    state: Vec<u8>,
    completed_runs: u64,
    timers: ProcessTimers,
}

/// Counters behind [`Status`](crate::Status).
#[derive(Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) completed_runs: u64,
    pub(crate) lives_left: u32,
    pub(crate) usage: Usage,
    pub(crate) restarts: u32,
}

/// The parent's shared state for one process, whatever its type.
pub(crate) struct Inner {
    key: &'static str,
    config: Config,
    has_error_hook: bool,
    pub(crate) started: Instant,
    stream: RwLock<Arc<Stream>>,
    child: Mutex<Child>,
    pid: AtomicU32,
    inbound: Mutex<Inbound>,
    send_lock: Mutex<()>,
    progress: Mutex<Progress>,
    callers_waiting: AtomicUsize,
    killed: AtomicBool,
    closing: AtomicBool,
    stop_requested: AtomicBool,
}

/// What a (re)spawn needs to know about the process type.
pub(crate) struct Launch {
    pub(crate) key: &'static str,
    pub(crate) has_error_hook: bool,
    pub(crate) state: Vec<u8>,
    pub(crate) config: Config,
}

impl Inner {
    /// Spawns the first child and, for restartable processes, the supervisor.
    pub(crate) fn launch(launch: Launch) -> Result<Arc<Self>, Error> {
        let Launch {
            key,
            has_error_hook,
            state,
            config,
        } = launch;
        let resume = Resume {
            lives_left: config.lives,
            ..Resume::default()
        };
        let (stream, child) = connect_child(key, &state, &config, resume)?;
        let inner = Arc::new(Self {
            key,
            has_error_hook,
            started: Instant::now(),
            pid: AtomicU32::new(child.id()),
            stream: RwLock::new(Arc::new(stream)),
            child: Mutex::new(child),
            inbound: Mutex::new(Inbound::new(config.max_frame_bytes, state)),
            send_lock: Mutex::new(()),
            progress: Mutex::new(Progress {
                completed_runs: 0,
                lives_left: config.lives,
                usage: Usage::default(),
                restarts: 0,
            }),
            callers_waiting: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            config,
        });
        if inner.config.needs_checkpoints() {
            start_supervisor(Arc::downgrade(&inner))?;
        }
        Ok(inner)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub(crate) fn progress(&self) -> Progress {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn send(&self, message: &ToChild) -> Result<(), Error> {
        let frame = wire::encode_frame(message, self.config.max_frame_bytes)?;
        let stream = Arc::clone(&self.stream.read().unwrap_or_else(PoisonError::into_inner));
        let _guard = self
            .send_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::io::Write::write_all(&mut &*stream, &frame).map_err(|_| Error::Disconnected)
    }

    /// Asks the child to finish; remembered, so a restarted child stops too.
    pub(crate) fn stop(&self) -> Result<(), Error> {
        self.stop_requested.store(true, Ordering::SeqCst);
        match self.send(&ToChild::Stop) {
            Err(Error::Disconnected) => Ok(()),
            other => other,
        }
    }

    pub(crate) fn kill(&self) -> Result<(), Error> {
        self.killed.store(true, Ordering::SeqCst);
        let mut child = self.lock_child();
        if child.try_wait()?.is_none() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub(crate) fn is_alive(&self) -> bool {
        matches!(self.lock_child().try_wait(), Ok(None))
    }

    pub(crate) fn was_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Locks what was read from the child; the supervisor steps aside while callers wait.
    pub(crate) fn lock_inbound(&self) -> MutexGuard<'_, Inbound> {
        self.callers_waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.inbound.lock().unwrap_or_else(PoisonError::into_inner);
        self.callers_waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    pub(crate) fn try_lock_inbound(&self) -> Option<MutexGuard<'_, Inbound>> {
        self.inbound.try_lock().ok()
    }

    /// Reads frames until `done` holds or the deadline passes; returns whether `done` holds.
    pub(crate) fn read_until(
        &self,
        deadline: Option<Instant>,
        done: impl Fn(&Inbound) -> bool,
    ) -> bool {
        let mut inbound = self.lock_inbound();
        while !done(&inbound) {
            if inbound.closed {
                return false;
            }
            inbound = self.pump(inbound, deadline);
            if past(deadline) {
                return done(&inbound);
            }
        }
        true
    }

    /// Reads at most one frame, waiting no later than `deadline` and no longer than a slice.
    pub(crate) fn pump<'a>(
        &'a self,
        inbound: MutexGuard<'a, Inbound>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, Inbound> {
        self.pump_slice(inbound, deadline, READ_SLICE)
    }

    fn pump_slice<'a>(
        &'a self,
        mut inbound: MutexGuard<'a, Inbound>,
        deadline: Option<Instant>,
        longest: Duration,
    ) -> MutexGuard<'a, Inbound> {
        if inbound.closed {
            return inbound;
        }
        let stream = Arc::clone(&self.stream.read().unwrap_or_else(PoisonError::into_inner));
        let hook_deadline = inbound.hook_deadline.as_ref().map(|(d, _)| *d);
        let wake_at = match (deadline, hook_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let slice = wake_at.map_or(longest, |d| {
            d.saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(1), longest)
        });
        if inbound.read_timeout != Some(slice) {
            if let Err(e) = stream.set_recv_timeout(Some(slice)) {
                self.broken(&mut inbound, WireError::Io(e));
                return inbound;
            }
            inbound.read_timeout = Some(slice);
        }
        match inbound.reader.read_message(&mut &*stream) {
            Ok(Some(message)) => self.accept(&mut inbound, message),
            Ok(None) => self.child_disconnected(&mut inbound),
            Err(e) if e.is_disconnect() => self.child_disconnected(&mut inbound),
            Err(e) if e.is_timeout() => self.enforce_hook_deadline(&mut inbound),
            Err(e) => self.broken(&mut inbound, e),
        }
        inbound
    }

    /// The backstop for hook timeouts: kills a child whose own watchdog did not end it in time
    /// (stopped, or stuck where no thread can run). The end of the connection follows.
    fn enforce_hook_deadline(&self, inbound: &mut Inbound) {
        let overdue = matches!(&inbound.hook_deadline, Some((d, _)) if Instant::now() >= *d);
        if !overdue {
            return;
        }
        if let Some((_, failure)) = inbound.hook_deadline.take() {
            inbound.timed_out.get_or_insert(failure);
        }
        let _ = self.lock_child().kill();
    }

    /// Records one message from the child.
    fn accept(&self, inbound: &mut Inbound, message: ToParent) {
        match message {
            ToParent::Tell(bytes) => inbound.outbox.push_back(bytes),
            ToParent::Progress {
                completed_runs,
                lives_left,
                usage,
            } => self.update_progress(|p| {
                p.completed_runs = completed_runs;
                p.lives_left = lives_left;
                p.usage = usage;
            }),
            ToParent::Checkpoint {
                state,
                completed_runs,
                new_samples,
            } => {
                self.update_progress(|p| p.completed_runs = completed_runs);
                let checkpoint = &mut inbound.checkpoint;
                checkpoint.state = state;
                checkpoint.completed_runs = completed_runs;
                for (slot, sample) in new_samples {
                    checkpoint.timers.record(slot, sample);
                }
            }
            ToParent::Finishing => inbound.finishing = true,
            ToParent::HookStarted { hook, limit, run } => {
                let deadline = Instant::now() + limit + BACKSTOP_GRACE;
                inbound.hook_deadline = Some((deadline, Failure::Timeout { hook, limit, run }));
            }
            ToParent::HookEnded => inbound.hook_deadline = None,
            ToParent::TimedOut { hook, limit, run } => {
                inbound.timed_out = Some(Failure::Timeout { hook, limit, run })
            }
            ToParent::Finished {
                output,
                completed_runs,
                timers,
            } => {
                self.update_progress(|p| p.completed_runs = completed_runs);
                inbound.finish(Terminal::Finished(output), Some(timers));
            }
            ToParent::Failed { failure, timers } => {
                inbound.finish(Terminal::Failed(failure), Some(timers))
            }
            ToParent::UnknownType(key) => {
                inbound.finish(Terminal::Setup(Error::UnknownType(key)), None)
            }
            ToParent::SetupFailed(detail) => inbound.finish(
                Terminal::Setup(Error::Wire(WireError::Malformed(detail))),
                None,
            ),
            ToParent::Hello { .. } => {}
        }
    }

    /// The child closed its connection: a normal exit after its terminal message, or a crash or
    /// timeout that is retried, handed to the `error` hook, or reported.
    fn child_disconnected(&self, inbound: &mut Inbound) {
        let status = self.reap(Some(Instant::now() + EXIT_GRACE));
        if inbound.terminal.is_some() || self.closing.load(Ordering::SeqCst) || self.was_killed() {
            inbound.closed = true;
            return;
        }
        let failure = inbound
            .timed_out
            .take()
            .unwrap_or_else(|| self.crash_failure(status));
        if let Some(original) = inbound.handling_error.take() {
            inbound.finish(Terminal::Failed(original), None);
            return;
        }
        let lives_left = self.progress().lives_left;
        let retry = failure.is_retryable() && !inbound.finishing && lives_left > 1;
        // A failure of the `error` hook itself is final: the hook is not run again for it.
        let pending =
            (!retry && self.has_error_hook && !failure.is_in(Hook::Error)).then(|| failure.clone());
        if !retry && pending.is_none() {
            inbound.finish(Terminal::Failed(failure), None);
            return;
        }
        let lives_left = if retry { lives_left - 1 } else { lives_left };
        if let Err(e) = self.restart(inbound, lives_left, pending.clone()) {
            inbound.finish(Terminal::Setup(e), None);
            return;
        }
        inbound.handling_error = pending;
    }

    fn crash_failure(&self, status: Option<ExitStatus>) -> Failure {
        let status = match status {
            Some(s) if s.code() == Some(EXIT_TIMED_OUT) => "ended by its hook watchdog".to_owned(),
            Some(s) => describe_exit(s),
            None => "stopped responding and was killed".to_owned(),
        };
        Failure::Crashed {
            status,
            run: self.progress().completed_runs,
        }
    }

    /// Starts a fresh child from the last checkpoint.
    fn restart(
        &self,
        inbound: &mut Inbound,
        lives_left: u32,
        pending: Option<Failure>,
    ) -> Result<(), Error> {
        let progress = self.progress();
        let resume = Resume {
            completed_runs: inbound.checkpoint.completed_runs,
            lives_left,
            elapsed: self.started.elapsed(),
            stop: self.stop_requested.load(Ordering::SeqCst),
            timers: inbound.checkpoint.timers.clone(),
            usage: progress.usage,
            pending,
        };
        let state = &inbound.checkpoint.state;
        let (stream, child) = connect_child(self.key, state, &self.config, resume)?;
        self.pid.store(child.id(), Ordering::SeqCst);
        *self.lock_child() = child;
        *self.stream.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(stream);
        inbound.reconnected(self.config.max_frame_bytes);
        self.update_progress(|p| {
            p.restarts += 1;
            p.lives_left = lives_left;
            p.completed_runs = inbound.checkpoint.completed_runs;
        });
        Ok(())
    }

    /// A malformed stream cannot be resynchronised: stop the child and report why.
    fn broken(&self, inbound: &mut Inbound, error: WireError) {
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
        inbound.finish(Terminal::Setup(Error::Wire(error)), None);
        inbound.closed = true;
    }

    /// Waits for the child to exit, no later than `deadline`; kills it past the deadline.
    pub(crate) fn reap(&self, deadline: Option<Instant>) -> Option<ExitStatus> {
        let mut backoff = Duration::from_micros(20);
        loop {
            if let Ok(Some(status)) = self.lock_child().try_wait() {
                return Some(status);
            }
            if past(deadline) {
                let mut child = self.lock_child();
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
        }
    }

    /// Ends the child when the handle goes away: a finished child gets time to exit by itself.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let finished = self.lock_inbound().terminal.is_some();
        if finished {
            self.reap(Some(Instant::now() + EXIT_GRACE));
        } else {
            let mut child = self.lock_child();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn update_progress(&self, update: impl FnOnce(&mut Progress)) {
        update(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inbound {
    fn new(max_frame: u32, initial_state: Vec<u8>) -> Self {
        Self {
            reader: FrameReader::new(max_frame),
            read_timeout: None,
            outbox: VecDeque::new(),
            terminal: None,
            closed: false,
            timers: None,
            checkpoint: Checkpoint {
                state: initial_state,
                completed_runs: 0,
                timers: ProcessTimers::default(),
            },
            timed_out: None,
            hook_deadline: None,
            finishing: false,
            handling_error: None,
        }
    }

    fn finish(&mut self, terminal: Terminal, timers: Option<ProcessTimers>) {
        self.terminal = Some(terminal);
        self.timers = Some(timers.unwrap_or_else(|| self.checkpoint.timers.clone()));
    }

    fn reconnected(&mut self, max_frame: u32) {
        self.reader = FrameReader::new(max_frame);
        self.read_timeout = None;
        self.timed_out = None;
        self.hook_deadline = None;
        self.finishing = false;
    }
}

/// Reads whenever no caller is reading, so crashes are recovered without waiting for a call.
fn start_supervisor(inner: Weak<Inner>) -> Result<(), Error> {
    thread::Builder::new()
        .name("skprocess-supervisor".into())
        .spawn(move || supervise(&inner))?;
    Ok(())
}

fn supervise(inner: &Weak<Inner>) {
    while let Some(inner) = inner.upgrade() {
        if inner.closing.load(Ordering::SeqCst) || !supervise_once(&inner) {
            return;
        }
    }
}

/// Reads one slice if no caller is reading; `false` once there is nothing left to supervise.
fn supervise_once(inner: &Inner) -> bool {
    let inbound = match inner.callers_waiting.load(Ordering::SeqCst) {
        0 => inner.try_lock_inbound(),
        _ => None,
    };
    let Some(inbound) = inbound else {
        thread::sleep(Duration::from_millis(1));
        return true;
    };
    if inbound.closed {
        return false;
    }
    drop(inner.pump_slice(inbound, None, SUPERVISOR_SLICE));
    true
}

/// Spawns a child, waits for it to prove the token and sends it the start message.
fn connect_child(
    key: &str,
    state: &[u8],
    config: &Config,
    resume: Resume,
) -> Result<(Stream, Child), Error> {
    let token = transport::random_hex(16)?;
    let rendezvous = Rendezvous::bind(config.socket_dir.as_deref())?;
    let mut child = spawn_child(rendezvous.address(), &token, config.max_frame_bytes)?;
    let stream = rendezvous
        .accept(
            &token,
            config.max_frame_bytes,
            config.connect_timeout,
            &mut child,
        )
        .map_err(|e| explain_bootstrap(e, &mut child));
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => return Err(kill_after_failure(&mut child, e)),
    };
    let start = ToChild::Start(Box::new(StartPayload {
        key: key.to_owned(),
        state: state.to_vec(),
        config: config.clone(),
        resume,
    }));
    match wire::write_message(&stream, &start, config.max_frame_bytes) {
        Ok(()) => Ok((stream, child)),
        Err(e) => Err(kill_after_failure(&mut child, e.into())),
    }
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

fn kill_after_failure(child: &mut Child, error: Error) -> Error {
    let _ = child.kill();
    let _ = child.wait();
    error
}

pub(crate) fn past(deadline: Option<Instant>) -> bool {
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
