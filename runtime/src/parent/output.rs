//! Where a child's standard output and standard error go ([`ChildSetup::stdout`],
//! [`ChildSetup::stderr`]), and the rest of how it is set up besides the bootstrap: its
//! environment, working directory and extra arguments — for every role, since every spawn
//! goes through `spawn.rs`, which calls [`configure`] and [`forward`].
//!
//! An inherited stream is the parent's own. A child started from a test binary prints
//! libtest's `running 1 test` before the hidden entry test runs: its standard output starts
//! as the null device, with the parent's own handed over as its standard input, which the
//! child makes its output before any user code; a captured or logged stream drops exactly that
//! header in the thread that reads it. A captured stream is copied into the process's [`CapturedOutput`] by a thread per
//! stream; a logged one is cut into lines and re-emitted through `tracing`. Those threads end
//! when the child (and whatever inherited the stream from it) closes it.

use std::io::{Read, Write};
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::config::{ChildSetup, Stdio};
use crate::protocol::bootstrap::ENV_STDOUT_ON_STDIN;

/// What libtest prints first in a child started from a test binary (its terse format, which
/// `-q` selects): a blank line and `running 1 test`, ended by a newline.
const TEST_HEADER: &[u8] = b"\nrunning 1 test";

/// The longest header line the filter holds back while it decides (a shuffle seed note can
/// follow the count).
const MAX_HEADER: usize = 256;

/// Longest line re-emitted as one event; a longer line is cut into several.
const MAX_LOG_LINE: usize = 64 * 1024;

/// The standard output and standard error a process's children wrote, kept when
/// [`ChildSetup::stdout`] or [`ChildSetup::stderr`] is [`Stdio::Capture`]: every child of the
/// process, restarts included, appends to it (every worker of a pool, to the pool's); a restarted
/// child's output comes after all of its predecessor's, unless a process that inherited the
/// predecessor's streams keeps them open past the half second a restart waits for them. Get it
/// with [`Handle::captured`](crate::Handle::captured),
/// [`Pool::captured`](crate::Pool::captured), [`Worker::captured`](crate::Worker::captured)
/// or [`WorkerResource::captured`](crate::WorkerResource::captured); it stays readable after
/// the handle is gone. It is kept in memory, without a limit.
#[derive(Debug, Default)]
pub struct CapturedOutput {
    state: Mutex<Streams>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Streams {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Captured streams of children that are still open.
    open: usize,
}

impl CapturedOutput {
    /// What the children wrote to standard output so far (empty when it is not captured).
    pub fn stdout(&self) -> Vec<u8> {
        self.lock().stdout.clone()
    }

    /// What the children wrote to standard error so far (empty when it is not captured).
    pub fn stderr(&self) -> Vec<u8> {
        self.lock().stderr.clone()
    }

    /// Waits without limit until every child started so far has closed its captured streams
    /// (see [`wait_timeout`](CapturedOutput::wait_timeout)).
    pub fn wait(&self) {
        self.wait_timeout(Duration::MAX);
    }

    /// Waits until every child started so far has closed its captured streams (it ended, and
    /// so did any process that inherited them), at most `timeout` (`Duration::MAX`: no
    /// limit); whether they are closed.
    /// After [`Handle::result`](crate::Handle::result) returned, this is how to know the
    /// output is complete.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = crate::deadline::after(Some(timeout));
        let mut streams = self.lock();
        while streams.open > 0 {
            streams = match crate::deadline::wait(&self.changed, streams, deadline) {
                Ok(streams) => streams,
                Err(_) => return false,
            };
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, stream: Stream, bytes: &[u8]) {
        let mut streams = self.lock();
        match stream {
            Stream::Stdout => streams.stdout.extend_from_slice(bytes),
            Stream::Stderr => streams.stderr.extend_from_slice(bytes),
        }
    }

    fn opened(&self) {
        self.lock().open += 1;
    }

    fn closed(&self) {
        let mut streams = self.lock();
        streams.open = streams.open.saturating_sub(1);
        drop(streams);
        self.changed.notify_all();
    }
}

/// Where a spawn's output goes besides its configuration: the process's buffers and the name
/// its log records carry.
#[derive(Clone, Default)]
pub(crate) struct Sink {
    pub(crate) captured: Option<Arc<CapturedOutput>>,
    pub(crate) process: &'static str,
}

impl Sink {
    /// The sink of a worker started with `setup`: buffers when it captures a stream; its log
    /// records name it `process`.
    pub(crate) fn for_worker(setup: &ChildSetup, process: &'static str) -> Self {
        Self {
            captured: setup.captures_output().then(Arc::default),
            process,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Sets up `command` as `setup` says: environment, working directory, and a pipe for each
/// stream a thread must read (`test_child`: this is a test binary, whose children print a
/// header). The arguments are the caller's: they go after skprocess's own.
pub(crate) fn configure(command: &mut Command, setup: &ChildSetup, test_child: bool) {
    for (name, value) in &setup.env {
        command.env(name, value);
    }
    if let Some(dir) = &setup.current_dir {
        command.current_dir(dir);
    }
    if test_child && setup.stdout == Stdio::Inherit {
        hand_over_stdout(command);
    } else {
        command.stdout(std_stdio(setup.stdout));
    }
    command.stderr(std_stdio(setup.stderr));
}

/// An inherited standard output for a child of a test binary: libtest's header goes to the
/// null device, and the child takes this process's standard output, handed over as its
/// standard input, before any user code runs. Its output then reaches this process's standard
/// output directly, in order, as an inherited stream's does, however soon this process exits
/// (a thread copying it could be cut off by that exit).
fn hand_over_stdout(command: &mut Command) {
    command.stdout(std::process::Stdio::null());
    // Without a standard output to copy, the child's has nowhere to go: the null device.
    if let Ok(stdout) = crate::sys::stdout_for_child() {
        command.stdin(stdout).env(ENV_STDOUT_ON_STDIN, "1");
    }
}

fn std_stdio(stdio: Stdio) -> std::process::Stdio {
    match stdio {
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Capture | Stdio::Log => std::process::Stdio::piped(),
    }
}

/// Starts a thread for each of `child`'s piped streams, sending it where `setup` and `sink`
/// say; `test_child`: its standard output starts with libtest's header, which is dropped
/// wherever it goes. Fails only when the OS refuses a thread.
pub(crate) fn forward(
    child: &mut Child,
    setup: &ChildSetup,
    sink: &Sink,
    test_child: bool,
) -> std::io::Result<()> {
    let pid = child.id();
    if let Some(stdout) = child.stdout.take() {
        let filter = test_child.then(HeaderFilter::default);
        start(stdout, filter, Stream::Stdout, setup.stdout, sink, pid)?;
    }
    if let Some(stderr) = child.stderr.take() {
        start(stderr, None, Stream::Stderr, setup.stderr, sink, pid)?;
    }
    Ok(())
}

fn start(
    source: impl Read + Send + 'static,
    filter: Option<HeaderFilter>,
    stream: Stream,
    stdio: Stdio,
    sink: &Sink,
    pid: u32,
) -> std::io::Result<()> {
    let process = sink.process;
    let captured = match (stdio, &sink.captured) {
        (Stdio::Capture, Some(captured)) => Some(Arc::clone(captured)),
        _ => None,
    };
    if let Some(captured) = &captured {
        captured.opened();
    }
    let closing = captured.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("skprocess-{}", stream.name()))
        .spawn(move || match (stdio, captured) {
            (Stdio::Log, _) => log_lines(source, filter, stream, pid, process),
            (_, Some(captured)) => {
                copy(source, filter, |bytes| captured.append(stream, bytes));
                captured.closed();
            }
            _ => {
                let mut out = std::io::stdout();
                // A closed standard output drops the child's output, as it would its own.
                copy(source, filter, |bytes| {
                    let _ = out.write_all(bytes).and_then(|()| out.flush());
                });
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            if let Some(captured) = closing {
                captured.closed();
            }
            Err(e)
        }
    }
}

/// Reads `source` to its end, handing what passes `filter` to `write`.
fn copy(mut source: impl Read, mut filter: Option<HeaderFilter>, mut write: impl FnMut(&[u8])) {
    let mut buffer = [0u8; 8192];
    loop {
        let bytes = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => buffer.get(..read).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        match &mut filter {
            Some(filter) if !filter.decided => {
                let passed = filter.pass(bytes);
                if !passed.is_empty() {
                    write(&passed);
                }
            }
            _ => write(bytes),
        }
    }
    if let Some(rest) = filter.map(|mut filter| filter.finish()) {
        if !rest.is_empty() {
            write(&rest);
        }
    }
}

/// Drops libtest's header from the start of a stream, and nothing else.
#[derive(Default)]
struct HeaderFilter {
    /// The start of the stream, held while it may still be the header.
    held: Vec<u8>,
    decided: bool,
}

impl HeaderFilter {
    /// What of `bytes` (after what was held) passes now.
    fn pass(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.decided {
            return bytes.to_vec();
        }
        self.held.extend_from_slice(bytes);
        let compared = self.held.len().min(TEST_HEADER.len());
        if self.held.get(..compared) != TEST_HEADER.get(..compared) {
            return self.decide(0);
        }
        if self.held.len() < TEST_HEADER.len() {
            return Vec::new();
        }
        // The header's line ends at the first newline after its start.
        let line_end = self
            .held
            .iter()
            .skip(1)
            .position(|&b| b == b'\n')
            .map(|at| at + 2);
        match line_end {
            Some(end) => self.decide(end),
            None if self.held.len() > MAX_HEADER => self.decide(0),
            None => Vec::new(),
        }
    }

    /// Stops holding back: drops the first `header` bytes held, passes the rest.
    fn decide(&mut self, header: usize) -> Vec<u8> {
        self.decided = true;
        let held = std::mem::take(&mut self.held);
        held.get(header..).unwrap_or_default().to_vec()
    }

    /// What was held back when the stream ended (never the whole header).
    fn finish(&mut self) -> Vec<u8> {
        if self.held.starts_with(TEST_HEADER) {
            return Vec::new();
        }
        self.decide(0)
    }
}

/// Re-emits each line of `source` as a `tracing` event.
fn log_lines(
    source: impl Read,
    filter: Option<HeaderFilter>,
    stream: Stream,
    pid: u32,
    process: &'static str,
) {
    let mut line = Vec::new();
    copy(source, filter, |bytes| {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            line.extend_from_slice(chunk);
            if line.ends_with(b"\n") || line.len() >= MAX_LOG_LINE {
                emit_output(stream.name(), &line, pid, process);
                line.clear();
            }
        }
    });
    if !line.is_empty() {
        emit_output(stream.name(), &line, pid, process);
    }
}

/// Re-emits one line a child wrote to `stream` (`Stdio::Log`): `INFO` for standard output,
/// `WARN` for standard error, without its line end.
fn emit_output(stream: &str, line: &[u8], pid: u32, process: &str) {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\n', '\r']);
    if stream == "stderr" {
        tracing::warn!(target: "skprocess::child", pid, process, stream, "{line}");
    } else {
        tracing::info!(target: "skprocess::child", pid, process, stream, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(pieces: &[&[u8]]) -> Vec<u8> {
        let mut filter = HeaderFilter::default();
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(filter.pass(piece));
        }
        out.extend(filter.finish());
        out
    }

    #[test]
    fn the_header_is_dropped_however_the_reads_cut_it() {
        let whole = b"\nrunning 1 test\nhello from the hook\n";
        assert_eq!(filtered(&[whole]), b"hello from the hook\n");
        let pieces: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(filtered(&pieces), b"hello from the hook\n");
        assert_eq!(filtered(&[b"\nrunning 1 test\n"]), b"");
        assert_eq!(filtered(&[b"\nrunning 1 test"]), b"");
    }

    #[test]
    fn anything_else_passes_untouched() {
        for text in [
            &b"hello\n"[..],
            b"\nrunning 2 tests\n",
            b"\n",
            b"",
            b"\nrunning",
        ] {
            assert_eq!(filtered(&[text]), text);
        }
        let twice = b"\nrunning 1 test\n\nrunning 1 test\n";
        assert_eq!(filtered(&[twice]), b"\nrunning 1 test\n");
    }
}
