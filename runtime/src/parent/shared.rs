//! What the handle and the supervisor's driver share about one process.
//!
//! Two locks, each held only for a few instructions: the child slot (which process and
//! connection are current, and whether a kill made that final) and the view (what the child
//! reported: messages, progress, timers, the outcome). Callers read and wait on the view; the
//! socket is read by whoever holds its reader role ([`ReaderRole`]): a listener waiting for a
//! message, or else the driver.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::deadline;
use crate::error::Error;
use crate::parent::exit::Exit;
use crate::parent::output::CapturedOutput;
use crate::parent::reaper::ChildProcess;
pub(crate) use crate::parent::supervisor::handoff::Payload;
use crate::parent::supervisor::handoff::ReaderRole;
use crate::parent::supervisor::machine::Outcome;
use crate::protocol::Role;
use crate::protocol::credits::{CreditReturn, Credits};
use crate::protocol::lifecycle::{Progress, ToChild};
use crate::timing::ProcessTimers;
use crate::transport::Connection;

/// How the process ended, with the output's bytes when it succeeded.
#[derive(Debug)]
pub(crate) enum Ending {
    Output(Vec<u8>),
    Outcome(Outcome),
}

/// The current child, as far as killing and sending go.
#[derive(Debug, Default)]
pub(crate) struct ChildSlot {
    pub(crate) child: Option<Arc<ChildProcess>>,
    pub(crate) pid: u32,
    pub(crate) connection: Option<Arc<Connection>>,
    /// Set by `kill()`: no child is alive and none will be started.
    pub(crate) killed: bool,
    pub(crate) stop_requested: bool,
}

/// What the child reported, for the handle's getters.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) outbox: VecDeque<Payload>,
    pub(crate) credit_return: CreditReturn,
    /// Nobody will read the outbox any more (`result()` was called): messages are dropped.
    pub(crate) discarding: bool,
    pub(crate) progress: Progress,
    pub(crate) restarts: u32,
    pub(crate) timers: ProcessTimers,
    pub(crate) ending: Option<Ending>,
    /// The outcome is known (it may already have been taken).
    pub(crate) over: bool,
    /// The outcome is known and no child of this process is alive.
    pub(crate) finished: bool,
    pub(crate) waker: Option<Waker>,
    /// Bumped each time the reader role is let go, so a listener that found it taken looks
    /// again.
    pub(crate) reader_turns: u64,
    /// Threads parked in [`ProcessShared::wait_view`]; a change wakes them only if there are
    /// any, so a stream of messages nobody waits for costs no wake-up system call.
    waiters: usize,
}

/// A control message from the handle to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Stop,
    DiscardOutbox,
    Credit(u32),
}

impl Control {
    fn message(self) -> ToChild<'static> {
        match self {
            Control::Stop => ToChild::Stop,
            Control::DiscardOutbox => ToChild::DiscardOutbox,
            Control::Credit(credits) => ToChild::Credit(credits),
        }
    }
}

/// Control messages that could not be sent at once, merged: their order does not matter.
#[derive(Debug, Default, PartialEq, Eq)]
struct Deferred {
    stop: bool,
    discard_outbox: bool,
    credits: u32,
}

impl Deferred {
    fn add(&mut self, control: Control) {
        match control {
            Control::Stop => self.stop = true,
            Control::DiscardOutbox => self.discard_outbox = true,
            Control::Credit(credits) => self.credits = self.credits.saturating_add(credits),
        }
    }

    fn into_controls(self) -> Vec<Control> {
        let credits = (self.credits > 0).then_some(Control::Credit(self.credits));
        let stop = self.stop.then_some(Control::Stop);
        let discard = self.discard_outbox.then_some(Control::DiscardOutbox);
        [stop, discard, credits].into_iter().flatten().collect()
    }
}

/// The state of one process shared by its handle and its driver.
#[derive(Debug)]
pub(crate) struct ProcessShared {
    pub(crate) key: &'static str,
    pub(crate) role: Role,
    pub(crate) config: Config,
    pub(crate) has_error_hook: bool,
    pub(crate) started: Instant,
    pub(crate) tell_credits: Credits,
    /// Who reads the current child's connection.
    pub(crate) reading: ReaderRole,
    slot: Mutex<ChildSlot>,
    slot_changed: Condvar,
    view: Mutex<View>,
    view_changed: Condvar,
    deferred: Mutex<Deferred>,
    has_deferred: AtomicBool,
    /// What the children wrote, when the configuration captures a stream.
    pub(crate) captured: Option<Arc<CapturedOutput>>,
}

impl ProcessShared {
    pub(crate) fn new(key: &'static str, has_error_hook: bool, config: Config) -> Self {
        Self {
            key,
            role: Role::Lifecycle,
            has_error_hook,
            started: Instant::now(),
            tell_credits: Credits::new(0),
            reading: ReaderRole::new(config.max_frame_bytes),
            slot: Mutex::default(),
            slot_changed: Condvar::new(),
            view: Mutex::new(View {
                outbox: VecDeque::new(),
                credit_return: CreditReturn::new(config.outbox_capacity),
                discarding: false,
                progress: Progress {
                    lives_left: config.lives,
                    ..Progress::default()
                },
                restarts: 0,
                timers: ProcessTimers::default(),
                ending: None,
                over: false,
                finished: false,
                waker: None,
                reader_turns: 0,
                waiters: 0,
            }),
            view_changed: Condvar::new(),
            deferred: Mutex::default(),
            has_deferred: AtomicBool::new(false),
            captured: config.setup.captures_output().then(Arc::default),
            config,
        }
    }

    pub(crate) fn slot(&self) -> MutexGuard<'_, ChildSlot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the view and wakes everyone waiting on it.
    pub(crate) fn update_view<T>(&self, change: impl FnOnce(&mut View) -> T) -> T {
        let mut view = self.view();
        let result = change(&mut view);
        let waker = view.waker.take();
        let waiters = view.waiters;
        drop(view);
        if waiters > 0 {
            self.view_changed.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Waits on the view until `done` holds or `deadline` passes (`None`: no limit); returns
    /// the view and whether `done` holds.
    pub(crate) fn wait_view(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut(&mut View) -> bool,
    ) -> (MutexGuard<'_, View>, bool) {
        let mut view = self.view();
        loop {
            if done(&mut view) {
                return (view, true);
            }
            view.waiters += 1;
            let waited = deadline::wait(&self.view_changed, view, deadline);
            let passed = waited.is_err();
            view = waited.unwrap_or_else(|view| view);
            view.waiters -= 1;
            if passed {
                return (view, false);
            }
        }
    }

    /// The current connection, waiting until `deadline` while a replacement child starts.
    pub(crate) fn connection(&self, deadline: Option<Instant>) -> Result<Arc<Connection>, Error> {
        let mut slot = self.slot();
        loop {
            if slot.killed || self.view().over {
                return Err(Error::Gone {
                    peer: crate::error::Peer::Process,
                });
            }
            if let Some(connection) = &slot.connection {
                return Ok(Arc::clone(connection));
            }
            slot = match deadline::wait(&self.slot_changed, slot, deadline) {
                Ok(slot) => slot,
                Err(_) => {
                    return Err(Error::Gone {
                        peer: crate::error::Peer::Process,
                    });
                }
            };
        }
    }

    /// Sends a control message to the current child without waiting: when the connection is
    /// busy (the child is stopped and its socket full), the message is kept and the driver
    /// sends it as soon as it can. A child that is gone needs none: a replacement learns the
    /// stop and the discarding from its resume point, and starts with fresh credits.
    pub(crate) fn send_control_soon(&self, control: Control) {
        let Some(connection) = self.slot().connection.clone() else {
            return;
        };
        let sent = connection.send_before(&control.message(), Some(Instant::now()));
        if let Ok(false) = sent {
            self.deferred().add(control);
            self.has_deferred.store(true, Ordering::Release);
        }
        self.note_unsent(&connection);
    }

    /// Whether control messages, or the rest of a frame, wait to be sent.
    pub(crate) fn has_deferred(&self) -> bool {
        self.has_deferred.load(Ordering::Acquire)
    }

    /// Notes that `connection` kept part of a frame for later (the child stopped reading).
    pub(crate) fn note_unsent(&self, connection: &Connection) {
        if connection.has_unsent() {
            self.has_deferred.store(true, Ordering::Release);
        }
    }

    /// Sends the control messages that had to wait, those the connection takes now.
    pub(crate) fn flush_deferred(&self) {
        if !self.has_deferred() {
            return;
        }
        let Some(connection) = self.slot().connection.clone() else {
            return;
        };
        // The child is gone if this fails; the driver hears of it from its reader.
        let _ = connection.flush_unsent();
        let mut deferred = self.deferred();
        let pending = std::mem::take(&mut *deferred).into_controls();
        for control in pending {
            let sent = connection.send_before(&control.message(), Some(Instant::now()));
            if let Ok(false) = sent {
                deferred.add(control);
            }
        }
        let left = *deferred != Deferred::default() || connection.has_unsent();
        self.has_deferred.store(left, Ordering::Release);
    }

    fn deferred(&self) -> MutexGuard<'_, Deferred> {
        self.deferred.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `connection` current and gives `tell` fresh credits for the new child's inbox.
    pub(crate) fn install_connection(&self, connection: Arc<Connection>) {
        self.tell_credits.reset(self.config.inbox_capacity);
        self.reading
            .install(Some(Arc::clone(&connection)), self.config.max_frame_bytes);
        self.slot().connection = Some(connection);
        self.slot_changed.notify_all();
        self.release_reader_role();
    }

    /// Forgets the connection of a child that is gone.
    pub(crate) fn clear_connection(&self) {
        self.slot().connection = None;
        self.reading.install(None, self.config.max_frame_bytes);
    }

    /// Tells listeners that found the reader role taken to look again.
    pub(crate) fn release_reader_role(&self) {
        let mut view = self.view();
        view.reader_turns = view.reader_turns.wrapping_add(1);
        let waiters = view.waiters;
        drop(view);
        if waiters > 0 {
            self.view_changed.notify_all();
        }
    }

    /// Ends the process for good: kills and reaps the current child under the slot lock, so
    /// no child is alive when this returns and none can be started afterwards.
    pub(crate) fn kill(&self) -> Result<(), Error> {
        let mut slot = self.slot();
        slot.killed = true;
        if let Some(child) = slot.child.take() {
            child.kill_and_reap();
        }
        if let Some(connection) = slot.connection.take() {
            connection.shutdown();
        }
        drop(slot);
        self.slot_changed.notify_all();
        self.tell_credits.close();
        self.update_view(|view| {
            if !view.over {
                view.ending = Some(Ending::Outcome(Outcome::Killed));
                view.over = true;
            }
            view.finished = true;
        });
        Ok(())
    }

    /// Whether a child process of this handle is running right now; never reaps.
    pub(crate) fn is_alive(&self) -> bool {
        let slot = self.slot();
        slot.child.as_ref().is_some_and(|child| !child.has_exited())
    }

    /// Waits for the current child to exit, for at most `grace`; kills it after that.
    pub(crate) fn reap(&self, grace: Duration) -> Exit {
        // The reaper waits; the slot lock is not held meanwhile, so `kill()` is never held up.
        let Some(child) = self.slot().child.clone() else {
            return Exit::Unknown;
        };
        let exit = child.reap(grace);
        let mut slot = self.slot();
        if slot
            .child
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &child))
        {
            slot.child = None;
        }
        exit
    }

    /// Kills the current child without reaping it; the driver reaps it when its connection
    /// ends.
    pub(crate) fn kill_current_child(&self) {
        if let Some(child) = self.slot().child.as_ref() {
            child.kill();
        }
    }

    /// Records the ending and closes the way in for `tell`.
    pub(crate) fn deliver(&self, ending: Ending) {
        self.tell_credits.close();
        self.update_view(|view| {
            // A kill may have ended the process first; its outcome stands.
            if !view.over {
                view.ending = Some(ending);
                view.over = true;
            }
        });
        self.slot_changed.notify_all();
    }

    /// No child of this process will run again.
    pub(crate) fn mark_finished(&self) {
        self.update_view(|view| view.finished = true);
    }

    /// Time since `start`.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
