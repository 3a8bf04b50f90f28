//! The answers of a [`WorkerResource`](super::WorkerResource)'s worker, read under the reader
//! role of [`transport::role`](crate::transport::role): a caller waiting for a result takes
//! the role and reads the socket itself, so the answer wakes only the caller; the resource's
//! reader thread drains the answers while no caller waits, so the worker's writes never wait
//! on the caller, and tells the resource when the connection is over.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::protocol::pool::ItemFailure;
use crate::transport::Connection;
use crate::transport::frame::{self, FrameReader};
use crate::transport::role::ReaderRole;

use super::wire::{FromResident, WireStatus};

/// Longest the reader thread waits for the rest of an answer once it holds the role.
const ANSWER_REST_WAIT: Duration = Duration::from_millis(1);
/// Longest the reader thread waits at a time while a caller holds the role.
const HELD_WAIT: Duration = Duration::from_millis(50);

/// What the reader thread received, and whether the worker ended.
#[derive(Default)]
pub(super) struct Received {
    pub(super) results: VecDeque<Result<Vec<u8>, ItemFailure>>,
    pub(super) statuses: VecDeque<WireStatus>,
    /// How the worker ended, once it did.
    pub(super) ended: Option<String>,
    /// Bumped each time the reader role is let go, so a caller that found it taken looks
    /// again.
    turns: u64,
}

/// What the holder of the reader role reads with.
struct Answers {
    frames: FrameReader,
    /// The read timeout last set on the connection.
    read_timeout: Option<Duration>,
    /// Once the connection is over: whether it ended cleanly (`false`: the worker broke the
    /// protocol, and is killed).
    over: Option<bool>,
}

/// How a turn at the connection ended.
#[derive(PartialEq, Eq)]
enum Turn {
    Read,
    TimedOut,
    Over,
}

pub(super) struct Inbox {
    received: Mutex<Received>,
    pub(super) arrived: Condvar,
    connection: Arc<Connection>,
    role: ReaderRole<Answers>,
}

impl Inbox {
    pub(super) fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (at most `timeout`, or as long as the worker lives) until `take` finds what it
    /// looks for; fails when the worker ended first. Reads the connection itself while no
    /// other thread does.
    pub(super) fn wait_for<T>(
        &self,
        timeout: Option<Duration>,
        mut take: impl FnMut(&mut Received) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut seen = None;
        let mut timed_out = false;
        loop {
            let mut received = self.lock();
            loop {
                if let Some(found) = take(&mut received) {
                    return Ok(Some(found));
                }
                if let Some(status) = &received.ended {
                    return Err(crashed(status));
                }
                // A timeout too long for the clock is no limit, as `Duration::MAX` is.
                let left = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if timed_out || (left.is_zero() && deadline.is_some()) {
                    return Ok(None);
                }
                if seen != Some(received.turns) {
                    break;
                }
                received = self
                    .arrived
                    .wait_timeout(received, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            seen = Some(received.turns);
            drop(received);
            timed_out = self.caller_turn(deadline) == Some(Turn::TimedOut);
        }
    }

    /// A caller's turn: reads until one answer is queued, the connection is over or
    /// `deadline` passes; `None` when another thread holds the role.
    fn caller_turn(&self, deadline: Option<Instant>) -> Option<Turn> {
        let mut answers = self.role.try_take()?;
        // The previous holder may have queued an answer after this caller looked.
        let queued = {
            let received = self.lock();
            !received.results.is_empty() || !received.statuses.is_empty()
        };
        let turn = match queued || answers.over.is_some() {
            true => Turn::Read,
            false => self.read(&mut answers, deadline, true),
        };
        if turn == Turn::Over {
            // The reader thread ends the worker: make sure it sees the end.
            self.connection.shutdown();
        }
        drop(answers);
        self.role.released();
        self.role_released();
        Some(turn)
    }

    /// The role was let go: callers that found it taken look again.
    fn role_released(&self) {
        let mut received = self.lock();
        received.turns = received.turns.wrapping_add(1);
        drop(received);
        self.arrived.notify_all();
    }

    /// Reads answers until `deadline`: a caller's turn (`until_answer`) until one is queued,
    /// the reader thread's until nothing whole is left buffered.
    fn read(&self, answers: &mut Answers, deadline: Option<Instant>, until_answer: bool) -> Turn {
        let mut got = false;
        loop {
            if answers.over.is_some() {
                return Turn::Over;
            }
            if !answers.frames.has_buffered_frame() {
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                // A zero timeout would mean none at all to the socket.
                if timeout.is_some_and(|t| t.is_zero()) {
                    return Turn::TimedOut;
                }
                if answers.read_timeout != timeout {
                    if self.connection.stream().set_read_timeout(timeout).is_err() {
                        answers.over = Some(false);
                        continue;
                    }
                    answers.read_timeout = timeout;
                }
            }
            match answers.frames.read_frame(&mut self.connection.stream()) {
                Ok(Some(frame)) => match frame::decode::<FromResident<'_>>(frame.bytes()) {
                    Ok(answer) => {
                        self.queue(answer);
                        got = true;
                    }
                    Err(_) => answers.over = Some(false),
                },
                Ok(None) => answers.over = Some(true),
                Err(e) if e.is_timeout() => return Turn::TimedOut,
                Err(_) => answers.over = Some(false),
            }
            if answers.over.is_none()
                && !answers.frames.has_buffered_frame()
                && (got || !until_answer)
            {
                return Turn::Read;
            }
        }
    }

    fn queue(&self, answer: FromResident<'_>) {
        let mut received = self.lock();
        match answer {
            FromResident::Output(bytes) => received.results.push_back(Ok(bytes.to_vec())),
            FromResident::Failed(failure) => received.results.push_back(Err(failure)),
            FromResident::Status(status) => received.statuses.push_back(status),
        }
        drop(received);
        self.arrived.notify_all();
    }

    /// The reader thread: reads while no caller does, until the connection is over; returns
    /// whether it ended cleanly.
    pub(super) fn read_in_background(&self) -> bool {
        let mut held_in_a_row = 0u32;
        loop {
            let turn = self.role.background_turn(
                self.connection.stream(),
                &mut held_in_a_row,
                HELD_WAIT,
                |a| a.over.is_some() || a.frames.has_buffered_frame(),
                || self.role_released(),
            );
            let mut answers = match turn {
                Ok(Some(answers)) => answers,
                Ok(None) => continue,
                Err(_) => return false,
            };
            let rest_by = Instant::now().checked_add(ANSWER_REST_WAIT);
            let turn = self.read(&mut answers, rest_by, false);
            let over = answers.over;
            drop(answers);
            self.role_released();
            if turn == Turn::Over {
                return over.unwrap_or(false);
            }
        }
    }
}

pub(super) fn crashed(status: &str) -> Error {
    Error::Crashed {
        status: status.to_owned(),
        run: 0,
    }
}

impl Inbox {
    /// The answers of the worker at the other end of `connection`, read with `frames`.
    pub(super) fn new(connection: Arc<Connection>, frames: FrameReader) -> Self {
        Self {
            received: Mutex::default(),
            arrived: Condvar::new(),
            connection,
            role: ReaderRole::new(Answers {
                frames,
                read_timeout: None,
                over: None,
            }),
        }
    }
}
