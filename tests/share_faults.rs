//! Share under faults, from the public API (issue 15): a writer whose coordinator is gone gets
//! an error instead of spinning (fault 1); a reader stopped during a large reply holds up no
//! one else (fault 3); write rings leave nothing in the file system (fault 5).

use std::time::{Duration, Instant};

use skprocess::error::Timed;
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// Every wait is bounded, so a regression fails instead of hanging.
const BOUND: Duration = Duration::from_secs(60);

/// A value larger than any socket buffer.
#[cfg(unix)]
const LARGE: usize = 4 << 20;

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Board {
    counter: u64,
    reads: u64,
    blob: Vec<u8>,
}

/// Writes without pause, reading only now and then.
#[derive(Serialize, Deserialize)]
struct Writer {
    share: Share<Board>,
}

#[skprocess]
impl Writer {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            // More writes between two reads than a write ring holds: with the coordinator
            // gone, the ring fills before the next read is reached.
            for _ in 0..300_000 {
                self.share.counter += 1;
            }
            self.share.counter.get()?;
        }
    }
}

/// Reads the large field again and again, counting its reads first.
#[derive(Serialize, Deserialize)]
struct Reader {
    share: Share<Board>,
}

#[skprocess]
impl Reader {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            self.share.reads += 1;
            self.share.blob.get()?;
        }
    }
}

/// Waits until `field` passes `above`; reads without pause, so the coordinator always holds a
/// read of ours to answer.
fn wait_above(read: impl Fn() -> u64, above: u64) -> u64 {
    let deadline = Instant::now() + BOUND;
    loop {
        let now = read();
        if now > above {
            return now;
        }
        assert!(Instant::now() < deadline, "the child made no progress");
    }
}

/// Starts a child that keeps writing to `share`, once its first write has landed.
fn start_writing(share: &Share<Board>) -> Handle<Writer> {
    let handle = Writer {
        share: share.clone(),
    }
    .start()
    .unwrap();
    wait_above(|| share.counter.get().unwrap(), 0);
    handle
}

/// Fault 1: the creating process drops its last handle while a child keeps writing. The
/// child's writes fill its ring; they must fail (and its next read report it) instead of
/// waiting forever for a coordinator that is gone.
#[test]
fn a_writer_whose_coordinator_is_gone_gets_an_error_and_never_spins() {
    let _bound = bound::within(BOUND * 2);
    let share = Share::new(Board::default()).unwrap();
    let handle = start_writing(&share);
    drop(share);
    match handle.result_timeout(BOUND) {
        Err(Error::Timeout {
            of: Timed::Result, ..
        }) => panic!("the writer never noticed its coordinator left"),
        Err(error) => assert!(
            error
                .to_string()
                .contains("the share's coordinator is gone"),
            "the writer failed otherwise: {error}"
        ),
        Ok(()) => panic!("the writer cannot end well"),
    }
}

/// Fault 3: a reader is stopped (SIGSTOP) right after it asked for a 4 MiB field, so the reply
/// cannot go out whole; another process's read must still be answered.
#[cfg(unix)] // SIGSTOP
#[test]
fn a_reader_stopped_during_a_large_reply_does_not_stall_other_readers() {
    let _bound = bound::within(BOUND * 2);
    let share = Share::new(Board {
        blob: vec![7; LARGE],
        ..Board::default()
    })
    .unwrap();
    let handle = Reader {
        share: share.clone(),
    }
    .start()
    .unwrap();
    let mut reads = 0;
    for round in 0..3 {
        // The child counts a read just before it asks: stopping it as soon as the count moves
        // stops it with its request sent and the reply not yet read.
        reads = wait_above(|| share.reads.get().unwrap(), reads);
        pid::signal(handle.pid(), libc::SIGSTOP);
        let other = share.clone();
        let answer = bound::on_thread(BOUND, "a read while another reader is stopped", move || {
            other.counter.get()
        });
        pid::signal(handle.pid(), libc::SIGCONT);
        assert_eq!(answer.unwrap(), 0, "round {round}");
    }
    handle.kill().unwrap();
    let _ = handle.result_timeout(BOUND);
    assert_eq!(share.blob.len().unwrap(), LARGE, "the share still serves");
}

/// Fault 5: write rings are anonymous shared memory, never files in `/dev/shm` (which a peer
/// could name, and a full one of which faults the writer).
#[cfg(target_os = "linux")]
#[test]
fn write_rings_are_no_files() {
    let _bound = bound::within(BOUND * 2);
    let share = Share::new(Board::default()).unwrap();
    let handle = start_writing(&share);
    let child = std::fs::read_to_string(format!("/proc/{}/maps", handle.pid())).unwrap();
    let parent = std::fs::read_to_string("/proc/self/maps").unwrap();
    for (who, maps) in [("the child", &child), ("this process", &parent)] {
        assert!(
            !maps.contains("/dev/shm/"),
            "{who} maps a file in /dev/shm:\n{maps}"
        );
        assert!(maps.contains("memfd:skp-ring"), "{who} has no write ring");
    }
    let rings: Vec<_> = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.starts_with(&format!("skp-ring-{}-", handle.pid()))
                || name.starts_with(&format!("skp-ring-{}-", std::process::id()))
        })
        .collect();
    assert!(rings.is_empty(), "ring files: {rings:?}");
    handle.kill().unwrap();
    let _ = handle.result_timeout(BOUND);
}
