//! The supervisor's driver: one thread per process that feeds what the child reports to the
//! [`Supervisor`] and carries out its actions — reaping, restarting, killing, delivering the
//! outcome.
//!
//! It reads the child's connection whenever no listener holds the reader role
//! ([`reader`](super::reader)), so a child never blocks on a parent that is not calling
//! anything; payloads go into the bounded outbox (the child spends credits for them),
//! everything else updates the shared view in place, and what a listener read for the
//! supervisor is handed over to it here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::parent::exit::Exit;
use crate::parent::shared::{Ending, ProcessShared};
use crate::parent::spawn;
use crate::parent::supervisor::handoff::{Handed, Interruption, Reported, Turn};
use crate::parent::supervisor::machine::{Action, Event, Outcome, Report, Restart, Supervisor};
use crate::parent::supervisor::reader::RoleGuard;
use crate::protocol::lifecycle::Resume;
use crate::transport::Connection;
use crate::transport::role::{backoff, next_in_a_row, readable};

/// How often control messages that could not be sent at once are retried.
const DEFERRED_RETRY: Duration = Duration::from_millis(5);
/// Longest the driver waits for the connection at a time.
const IDLE_WAKE: Duration = Duration::from_millis(50);
/// Longest the driver waits for the rest of a frame once it holds the reader role; a frame
/// cut there is finished at its next turn.
const FRAME_REST_WAIT: Duration = Duration::from_millis(1);

/// How long a child whose connection ended may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Longest a restart waits for what the ended child wrote to its captured streams to be read
/// to their end; only a process that inherited those streams from it keeps them open longer.
const PREDECESSOR_OUTPUT_WAIT: Duration = Duration::from_millis(500);

/// Starts the driver of a process whose first child is connected.
pub(crate) fn start(
    shared: Arc<ProcessShared>,
    state: Vec<u8>,
    connection: Arc<Connection>,
) -> std::io::Result<()> {
    let machine = Supervisor::new(shared.config.lives, shared.has_error_hook);
    let mut driver = Driver {
        shared,
        machine,
        checkpoint: state,
        output: None,
        connection,
        held_in_a_row: 0,
    };
    std::thread::Builder::new()
        .name("skprocess-supervisor".into())
        .spawn(move || driver.run())
        .map(drop)
}

struct Driver {
    shared: Arc<ProcessShared>,
    machine: Supervisor,
    /// The current child's connection, watched for frames while no listener reads it.
    connection: Arc<Connection>,
    /// The state to restart from: the start state, then each checkpoint.
    checkpoint: Vec<u8>,
    /// The output of a `Finished` report, until it is delivered.
    output: Option<Vec<u8>>,
    /// Times in a row the driver found a listener holding the reader role.
    held_in_a_row: u32,
}

impl Driver {
    fn run(&mut self) {
        loop {
            if self.shared.slot().killed {
                self.handle(Event::KillRequested);
            }
            let interruption = self.read_until_interrupted();
            match interruption {
                Interruption::TimedOut => {
                    self.shared.flush_deferred();
                    self.handle(Event::Tick(Instant::now()));
                }
                Interruption::Ended => {
                    if !self.connection_ended(None) {
                        break;
                    }
                }
                Interruption::Malformed(detail) => {
                    if !self.connection_ended(Some(detail)) {
                        break;
                    }
                }
            }
        }
        self.shared.mark_finished();
    }

    /// Reads and dispatches frames, and takes what listeners read for the supervisor, until
    /// the connection ends or the next deadline passes.
    fn read_until_interrupted(&mut self) -> Interruption {
        loop {
            if let Some(interruption) = self.take_handed() {
                return interruption;
            }
            let wait = self.wait_time();
            if self.shared.reading.is_held() {
                // A listener reads: it hands over what the supervisor must hear.
                let backoff = backoff(self.held_in_a_row, wait);
                let woken = self.shared.reading.wait_handed(backoff);
                self.held_in_a_row = next_in_a_row(self.held_in_a_row, woken);
                return Interruption::TimedOut;
            }
            self.held_in_a_row = 0;
            match self.readable(Some(wait)) {
                Ok(true) => {}
                Ok(false) => return Interruption::TimedOut,
                Err(()) => return Interruption::Ended,
            }
            let shared = Arc::clone(&self.shared);
            // Taken meanwhile: that listener reads these frames; or it read them already.
            if let Some(mut role) = RoleGuard::try_take(&shared) {
                if self.readable(Some(Duration::ZERO)) != Ok(true) {
                    continue;
                }
                let rest_by = Instant::now().checked_add(FRAME_REST_WAIT);
                let turn = role.read(&shared, rest_by, false);
                drop(role);
                if turn == Turn::Read && self.machine.next_deadline().is_some() {
                    // A running deadline: check it between frames.
                    if let Some(interruption) = self.take_handed() {
                        return interruption;
                    }
                    return Interruption::TimedOut;
                }
            }
        }
    }

    /// Whether the connection has something to read, waiting at most `timeout`.
    fn readable(&self, timeout: Option<Duration>) -> Result<bool, ()> {
        readable(self.connection.stream(), timeout).map_err(drop)
    }

    /// Feeds the supervisor what readers handed over; returns how the connection ended, if
    /// it did.
    fn take_handed(&mut self) -> Option<Interruption> {
        let mut ended = None;
        for handed in self.shared.reading.take_handed() {
            match handed {
                Handed::Report(report) if ended.is_none() => self.on_report(report),
                Handed::Report(_) => {}
                Handed::Interrupted(why) => ended = ended.or(Some(why)),
            }
        }
        ended
    }

    /// How long to wait for the connection: until the supervisor's next deadline, or a
    /// while when it has none.
    fn wait_time(&self) -> Duration {
        // Whole milliseconds past the deadline, so it has passed when the wait ends.
        let until_deadline = self.machine.next_deadline().map(|deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            Duration::from_millis(
                u64::try_from(left.as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1),
            )
        });
        // Control messages that had to wait are retried often; otherwise the driver still
        // wakes now and then, so one deferred while it was waiting is not forgotten.
        let retry = match self.shared.has_deferred() {
            true => DEFERRED_RETRY,
            false => IDLE_WAKE,
        };
        until_deadline.map_or(retry, |until| until.min(retry))
    }

    fn on_report(&mut self, report: Reported) {
        match report {
            Reported::Report(report) => self.handle(Event::Report(report)),
            Reported::Checkpoint {
                state,
                completed_runs,
            } => {
                self.checkpoint = state;
                self.handle(Event::Report(Report::Checkpoint { completed_runs }));
            }
            Reported::Finished(output) => {
                self.output = Some(output);
                self.handle(Event::Report(Report::Finished));
            }
        }
    }

    /// The connection is over: reap the child and let the supervisor decide. Returns whether
    /// there is a new child to read from.
    fn connection_ended(&mut self, malformed: Option<String>) -> bool {
        let at = Instant::now();
        // Whoever still reads it wakes: a replacement's reader is installed only after.
        self.connection.shutdown();
        self.shared.clear_connection();
        let exit = match malformed {
            Some(detail) => {
                self.shared.kill_current_child();
                let _ = self.shared.reap(EXIT_GRACE);
                Exit::Protocol(detail)
            }
            None => self.shared.reap(EXIT_GRACE),
        };
        let killed = self.shared.slot().killed;
        let event = if killed {
            Event::KillRequested
        } else {
            Event::Ended { exit, at }
        };
        self.handle(event);
        !self.machine.is_over() && !killed && self.shared.slot().connection.is_some()
    }

    /// Feeds one event to the supervisor and carries out what it says, until it is quiet.
    fn handle(&mut self, event: Event) {
        let mut next = Some(event);
        while let Some(event) = next.take() {
            next = match self.machine.handle(event) {
                Some(Action::Restart(restart)) => self.restart(restart),
                Some(Action::KillChild) => {
                    self.shared.kill_current_child();
                    None
                }
                Some(Action::Deliver(outcome)) => {
                    let lives_left = self.machine.lives_left();
                    self.shared
                        .update_view(|view| view.progress.lives_left = lives_left);
                    self.deliver(outcome);
                    None
                }
                None => None,
            };
        }
    }

    /// Starts a replacement child; a failure becomes the next event.
    fn restart(&mut self, restart: Restart) -> Option<Event> {
        // The replacement's captured output goes after all of its predecessor's, not among
        // the last of it: the ended child's streams are read to their end first.
        if let Some(captured) = &self.shared.captured {
            captured.wait_timeout(PREDECESSOR_OUTPUT_WAIT);
        }
        let resume = self.resume(&restart);
        let allowance = resume.outbox_credits;
        let timers = self.shared.view().timers.clone();
        match spawn::launch(&self.shared, &self.checkpoint, resume, &timers) {
            Ok(connection) => {
                self.shared.update_view(|view| {
                    view.restarts = self.machine.restarts();
                    view.progress.lives_left = restart.lives_left;
                    view.progress.completed_runs = restart.completed_runs;
                    view.credit_return.reset(allowance);
                });
                self.shared.install_connection(Arc::clone(&connection));
                self.connection = connection;
                None
            }
            Err(Error::Killed) => Some(Event::KillRequested),
            Err(error) => Some(Event::SpawnFailed(error)),
        }
    }

    fn resume(&self, restart: &Restart) -> Resume {
        let stop = self.shared.slot().stop_requested;
        let view = self.shared.view();
        let queued = u32::try_from(view.outbox.len()).unwrap_or(u32::MAX);
        Resume {
            completed_runs: restart.completed_runs,
            lives_left: restart.lives_left,
            elapsed: self.shared.uptime(),
            stop,
            usage: view.progress.usage,
            pending: restart.pending.clone(),
            outbox_credits: self.shared.config.outbox_capacity.saturating_sub(queued),
            discard_outbox: view.discarding,
        }
    }

    fn deliver(&mut self, outcome: Outcome) {
        let ending = match (outcome, self.output.take()) {
            (Outcome::Finished, Some(output)) => Ending::Output(output),
            (outcome, _) => Ending::Outcome(outcome),
        };
        self.shared.deliver(ending);
    }
}
