//! Share calls with a time limit (issue 16): a handle from `Share::with_timeout` gives up with
//! `Error::Timeout` when the coordinator does not answer — the share is paused, or the
//! coordinator's process is stopped — and afterwards the share answers the next call with
//! its own answer (not the late reply of the call that gave up), with every write made before
//! applied.

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[cfg(unix)]
#[path = "support/pid.rs"]
mod pid;

/// Every wait is bounded, so a regression fails instead of hanging.
const BOUND: Duration = Duration::from_secs(60);

/// The limit of the handles under test.
const LIMIT: Duration = Duration::from_millis(200);

/// Writes made while the coordinator does not answer (fewer than a write ring holds).
const WRITES: u64 = 100;

/// What a call that gave up must say.
fn is_share_timeout<T>(outcome: &Result<T, Error>) -> bool {
    matches!(outcome, Err(Error::Timeout { limit, of: skprocess::error::Timed::Share }) if *limit == LIMIT)
}

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Board {
    counter: u64,
    /// What the calls that give up read: a late reply to one of them, read as the next
    /// call's, would say this instead of the counter.
    marker: u64,
}

#[shared]
impl Board {
    /// A `#[shared]` method that reads.
    fn marker_plus(&self, add: u64) -> u64 {
        self.marker + add
    }
}

/// Connects, waits while the parent pauses the share, writes, then makes calls that must give
/// up; reads the counter again once the parent resumed the share.
#[derive(Serialize, Deserialize)]
struct Patient {
    /// Sent with its limit: the copy in the child keeps it.
    share: Share<Board>,
}

#[skprocess(inbox = u64, outbox = Vec<bool>)]
impl Patient {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        self.share.counter.get()?;
        ctx.tell(Vec::new())?;
        // The parent paused the share.
        ctx.listen_timeout(BOUND)?;
        for _ in 0..WRITES {
            self.share.counter += 1;
        }
        let gave_up = vec![
            is_share_timeout(&self.share.marker.get()),
            is_share_timeout(&self.share.get()),
            is_share_timeout(&self.share.marker_plus(1)),
        ];
        ctx.tell(gave_up)?;
        // The parent resumed the share.
        ctx.listen_timeout(BOUND)?;
        Ok(())
    }

    fn result(&mut self, _: &mut Ctx<Self>) -> Result<u64, Error> {
        self.share.counter.get()
    }
}

#[test]
fn a_call_from_another_process_on_a_paused_share_times_out_and_the_share_stays_whole() {
    let _bound = bound::within(BOUND * 2);
    let share = Share::new(Board {
        marker: 7,
        ..Board::default()
    })
    .unwrap();
    let handle = Patient {
        share: share.with_timeout(LIMIT),
    }
    .start()
    .unwrap();
    assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(Vec::new()));
    share.pause().unwrap();
    handle.tell(0).unwrap();
    let gave_up = handle.listen_timeout(BOUND);
    share.resume().unwrap();
    assert_eq!(
        gave_up.unwrap(),
        Some(vec![true; 3]),
        "a call on the paused share did not give up with the handle's limit"
    );
    handle.tell(0).unwrap();
    assert_eq!(
        handle.result_timeout(BOUND).unwrap(),
        WRITES,
        "the child's next call after the timeouts read something else than the counter"
    );
    assert_eq!(share.counter.get().unwrap(), WRITES);
}

/// Creates a share and hands it to the parent; keeps it until told.
#[derive(Serialize, Deserialize)]
struct Creator;

#[skprocess(inbox = u64, outbox = Share<Board>)]
impl Creator {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let share = Share::new(Board {
            marker: 7,
            ..Board::default()
        })?;
        ctx.tell(share.clone())?;
        ctx.listen_timeout(BOUND)?;
        Ok(())
    }
}

/// Whether every thread of `pid` is stopped.
#[cfg(target_os = "linux")]
fn every_thread_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which ends at the last ')'.
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    })
}

/// The coordinator's process is stopped (SIGSTOP): calls with a limit give up, the writes
/// made meanwhile wait in the ring, and after SIGCONT everything is there.
#[cfg(target_os = "linux")] // SIGSTOP, and the pid support reads /proc
#[test]
fn a_call_to_a_stopped_coordinator_times_out_and_the_next_answers_after_it_continues() {
    let _bound = bound::within(BOUND * 2);
    let handle = Creator.start().unwrap();
    let share = handle.listen_timeout(BOUND).unwrap().unwrap();
    let mut timed = share.with_timeout(LIMIT);
    assert_eq!(timed.counter.get().unwrap(), 0);
    pid::signal(handle.pid(), libc::SIGSTOP);
    // The signal is delivered asynchronously: wait until every thread of it has stopped.
    bound::until(BOUND, "the coordinator's process to stop", || {
        every_thread_stopped(handle.pid())
    });
    for _ in 0..WRITES {
        timed.counter += 1;
    }
    let field = timed.marker.get();
    // The explicit form, on the unlimited handle; and the method, once the connection that
    // gave up is gone (it connects again, and gives up in the handshake).
    let whole = share.get_timeout(LIMIT);
    let method = timed.marker_plus(1);
    pid::signal(handle.pid(), libc::SIGCONT);
    assert!(is_share_timeout(&field), "{field:?}");
    assert!(is_share_timeout(&whole), "{:?}", whole.map(|_| ()));
    assert!(is_share_timeout(&method), "{method:?}");
    // Without limit now, bounded by the test's bound.
    assert_eq!(share.counter.get().unwrap(), WRITES);
    assert_eq!(timed.marker_plus(1).unwrap(), 8);
    drop((share, timed));
    handle.tell(0).unwrap();
    handle.result_timeout(BOUND).unwrap();
}
