//! A [`WorkerResource`](super::WorkerResource)'s process, the child side: one thread reads a
//! message, runs the function on it, writes the answer, and reads the next, so an answer
//! leaves the moment it is ready. The parent keeps reading its answers on a thread of its own,
//! so this process's writes never wait on the parent's; the time spent waiting in `read` with
//! nothing to do is the worker's starvation.

use std::time::Instant;

use crate::child::bootstrap::{self, Started};
use crate::pool::function::{self, Callable};
use crate::pool::worker::{EXIT_REFUSED, check_build};
use crate::protocol::pool::{ItemFailure, ToPool};
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};

use super::wire::{FromResident, ToResident, WireStatus};

/// Runs until the parent closes the connection; the exit code.
pub(crate) fn run(connection: Connection, mut reader: FrameReader, started: Started) -> i32 {
    if let Err(refusal) = check_build(&started.state).map(drop) {
        let _ = connection.send(&ToPool::Refused(refusal));
        return EXIT_REFUSED;
    }
    if connection.send(&ToPool::Ready).is_err() {
        return EXIT_REFUSED;
    }
    if watch_for_hangup(&connection).is_err() {
        return EXIT_REFUSED;
    }
    let mut worker = Resident {
        started: Instant::now(),
        status: WireStatus::default(),
        function: Err("no function was set".into()),
        output: Vec::new(),
    };
    loop {
        let waiting = Instant::now();
        let frame = match reader.read_frame(&mut connection.stream()) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => return 0,
        };
        worker.status.starved = worker.status.starved.saturating_add(nanos_since(waiting));
        let Ok(message) = frame::decode::<ToResident<'_>>(frame.bytes()) else {
            return EXIT_REFUSED;
        };
        if matches!(message, ToResident::Finish) {
            return 0;
        }
        if worker.answer(&connection, message).is_err() {
            return 0;
        }
    }
}

/// Ends the process when the parent closes the connection completely (it died, or killed
/// this worker) even while the one thread is busy in a long call and not reading: without
/// this, a worker whose parent was SIGKILLed mid-call would live on until the call returns.
/// A parent that stops the worker says so in a message after the calls already sent, which
/// still run.
fn watch_for_hangup(connection: &Connection) -> std::io::Result<()> {
    let stream = connection.stream().try_clone()?;
    std::thread::Builder::new()
        .name("skprocess-resident-watch".into())
        .spawn(move || {
            if stream.wait_hangup() {
                bootstrap::exit_parent_gone();
            }
        })
        .map(drop)
}

fn nanos_since(instant: Instant) -> u64 {
    u64::try_from(instant.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The worker's function and what it measured.
struct Resident {
    started: Instant,
    status: WireStatus,
    /// The function to call, or why there is none.
    function: Result<Callable, String>,
    output: Vec<u8>,
}

impl Resident {
    /// Carries out one message; `Err` when the parent is gone.
    fn answer(&mut self, connection: &Connection, message: ToResident<'_>) -> Result<(), ()> {
        match message {
            ToResident::Call(bytes) => {
                let outcome = self.call(bytes);
                let answer = match &outcome {
                    Ok(()) => FromResident::Output(&self.output),
                    Err(failure) => FromResident::Failed(failure.clone()),
                };
                connection.send(&answer).map_err(drop)
            }
            ToResident::SetFunction { offset } => {
                // SAFETY: the offsets come from the parent, proven to be this same build
                // before any message was read (`check_build`).
                self.function = unsafe { function::resolve(offset) };
                Ok(())
            }
            ToResident::Status => {
                let mut status = self.status;
                status.uptime = nanos_since(self.started);
                connection.send(&FromResident::Status(status)).map_err(drop)
            }
            // The loop ends on it before it gets here.
            ToResident::Finish => Ok(()),
        }
    }

    fn call(&mut self, bytes: &[u8]) -> Result<(), ItemFailure> {
        let function = match &self.function {
            Ok(function) => *function,
            Err(detail) => return Err(ItemFailure::UnknownTask(detail.clone())),
        };
        let start = Instant::now();
        self.output.clear();
        let outcome = function.call(bytes, &mut self.output);
        self.status.busy = self.status.busy.saturating_add(nanos_since(start));
        self.status.items = self.status.items.saturating_add(1);
        outcome
    }
}
