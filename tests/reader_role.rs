//! The reader role of a connection: a thread in `listen` reads the connection itself, and
//! the background reader (the parent's driver, the child's reader thread) reads only while
//! nobody listens. These are the races that design brings: a kill, a stop or a terminal
//! report arriving while a listener holds the role; two threads listening at once; a
//! listener whose timeout passes giving the role back.
#![cfg(any(target_os = "linux", windows))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use skprocess::error::Peer;
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The net under the whole test.
const TEST_BOUND: Duration = Duration::from_secs(120);
/// The bound on waits for an outcome.
const BOUND: Duration = Duration::from_secs(30);

/// Echoes each number it is told; told 0, it says the numbers 1 to `burst` instead. It stops
/// when asked.
#[derive(Serialize, Deserialize)]
struct Echo {
    burst: u64,
}

#[skprocess(runs = None, inbox = u64, outbox = u64)]
impl Echo {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match ctx.listen_timeout(Duration::from_millis(20))? {
            Some(0) => (1..=self.burst).try_for_each(|n| ctx.tell(n)),
            Some(n) => ctx.tell(n),
            None => Ok(()),
        }
    }

    fn result(&mut self) -> u64 {
        7
    }
}

/// Counts its iterations and says nothing; its `result` is the count.
#[derive(Serialize, Deserialize, Default)]
struct Quiet {
    runs: u64,
}

#[skprocess(runs = None, outbox = u64)]
impl Quiet {
    fn run(&mut self) {
        self.runs += 1;
        thread::sleep(Duration::from_millis(1));
    }

    fn result(&mut self) -> u64 {
        self.runs
    }
}

#[test]
fn a_kill_while_a_listener_holds_the_role_ends_the_listen_and_no_child_is_left() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Arc::new(Quiet::default().start().unwrap());
    let pid = handle.pid();
    let listener = {
        let handle = Arc::clone(&handle);
        thread::spawn(move || handle.listen())
    };
    // The listener holds the role and blocks in the read; progress keeps flowing through it.
    let at = handle.current_run();
    bound::until(BOUND, "progress is read while a listener waits", || {
        handle.current_run() > at + 3
    });
    handle.kill().unwrap();
    assert!(pid::reaped(pid), "kill returned with the child not reaped");
    let listened = bound::join(listener, BOUND, "listen after kill");
    assert!(
        matches!(
            listened,
            Err(Error::Gone {
                peer: Peer::Process
            })
        ),
        "{listened:?}"
    );
}

#[test]
fn a_stop_and_the_terminal_report_reach_the_supervisor_while_a_listener_holds_the_role() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Arc::new(Quiet::default().start().unwrap());
    let listener = {
        let handle = Arc::clone(&handle);
        thread::spawn(move || handle.listen())
    };
    bound::until(BOUND, "the child runs", || handle.current_run() > 2);
    handle.request_stop();
    // `Finished` is read by the listener, which hands it to the supervisor.
    let listened = bound::join(listener, BOUND, "listen after stop");
    assert!(
        matches!(
            listened,
            Err(Error::Gone {
                peer: Peer::Process
            })
        ),
        "{listened:?}"
    );
    let handle = Arc::into_inner(handle).unwrap();
    let runs = bound::call(BOUND, "result after stop", || handle.result()).unwrap();
    assert!(runs > 2);
}

#[test]
fn two_threads_listening_at_once_get_every_message_once() {
    let _bound = bound::within(TEST_BOUND);
    const BURST: u64 = 2000;
    let handle = Arc::new(Echo { burst: BURST }.start().unwrap());
    let sum = Arc::new(AtomicU64::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let listeners: Vec<_> = (0..2)
        .map(|_| {
            let (handle, sum, count) = (Arc::clone(&handle), Arc::clone(&sum), Arc::clone(&count));
            thread::spawn(move || {
                while count.load(Ordering::SeqCst) < BURST {
                    if let Some(n) = handle.listen_timeout(Duration::from_millis(10)).unwrap() {
                        sum.fetch_add(n, Ordering::SeqCst);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    handle.tell(0).unwrap();
    for listener in listeners {
        bound::join(listener, BOUND, "a listener");
    }
    assert_eq!(count.load(Ordering::SeqCst), BURST);
    assert_eq!(sum.load(Ordering::SeqCst), BURST * (BURST + 1) / 2);
    assert_eq!(
        handle.listen_timeout(Duration::from_millis(50)).unwrap(),
        None
    );
    handle.request_stop();
}

#[test]
fn a_listener_whose_timeout_passes_gives_the_role_back() {
    let _bound = bound::within(TEST_BOUND);
    const BURST: u64 = 3000;
    let handle = Arc::new(Echo { burst: BURST }.start().unwrap());
    for _ in 0..5 {
        assert_eq!(
            handle.listen_timeout(Duration::from_millis(5)).unwrap(),
            None
        );
    }
    // Nobody listens now: the driver must drain the burst (more than the socket holds), or
    // the child would stall; and another thread must be able to take the role after that.
    handle.tell(0).unwrap();
    let other = Arc::clone(&handle);
    let received = bound::on_thread(BOUND, "listening on another thread", move || {
        (1..=BURST)
            .map(|n| (n, other.listen_timeout(BOUND).unwrap()))
            .find(|(n, got)| *got != Some(*n))
    });
    assert_eq!(received, None, "messages out of order or missing");
    handle.tell(41).unwrap();
    assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(41));
    handle.request_stop();
    let handle = Arc::into_inner(handle).unwrap();
    assert_eq!(bound::call(BOUND, "result", || handle.result()).unwrap(), 7);
}

#[test]
fn a_listen_that_hears_nothing_waits_its_whole_timeout() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Echo { burst: 0 }.start().unwrap();
    // Not whole milliseconds: the socket's timeout is rounded down to them, and a read that
    // times out before the listen's deadline must read on.
    let timeout = Duration::from_micros(2_700);
    for _ in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(handle.listen_timeout(timeout).unwrap(), None);
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    }
    handle.request_stop();
    assert_eq!(bound::call(BOUND, "result", || handle.result()).unwrap(), 7);
}

#[test]
fn a_hook_listening_in_the_child_still_sees_a_stop() {
    let _bound = bound::within(TEST_BOUND);
    // The child's hook listens most of the time, so it holds the role when the stop comes.
    let handle = Echo { burst: 0 }.start().unwrap();
    for n in 1..50 {
        handle.tell(n).unwrap();
        assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(n));
    }
    handle.request_stop();
    assert_eq!(
        bound::call(BOUND, "result after stop", || handle.result()).unwrap(),
        7
    );
}

#[test]
fn listeners_that_spin_first_get_every_message_in_order() {
    let _bound = bound::within(TEST_BOUND);
    let config = Echo::default_config().listen_spin(Duration::from_micros(50));
    let handle = Echo { burst: 0 }.start_with(config).unwrap();
    for n in 1..200 {
        handle.tell(n).unwrap();
        assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(n));
    }
    assert_eq!(
        handle.listen_timeout(Duration::from_millis(5)).unwrap(),
        None
    );
    handle.request_stop();
    assert_eq!(bound::call(BOUND, "result", || handle.result()).unwrap(), 7);
}

/// The file a worker of [`slow_double`] creates once it is inside its endless call.
fn in_call_marker(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("skp-reader-role-in-call-{pid}"))
}

fn slow_double(x: u64) -> u64 {
    if x == u64::MAX {
        // Says so where the test can see it on every platform (Windows shows no process
        // state), then never returns.
        let _ = std::fs::write(in_call_marker(std::process::id()), b"");
        thread::sleep(Duration::from_secs(3600));
    }
    x * 2
}

#[test]
fn a_worker_killed_while_its_caller_reads_fails_the_call_and_is_reaped() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = skprocess::WorkerResource::new(slow_double).unwrap();
    assert_eq!(worker.execute(21).unwrap(), 42);
    let pid = worker.pid();
    // The caller holds the role and blocks in the read while the worker sleeps.
    worker.send(u64::MAX).unwrap();
    let marker = in_call_marker(pid);
    let killer = thread::spawn(move || {
        bound::until(BOUND, "the worker is inside its call", || marker.exists());
        #[cfg(unix)]
        bound::until(BOUND, "the worker sleeps in its call", || {
            pid::state(pid) == Some('S')
        });
        pid::kill(pid);
        let _ = std::fs::remove_file(&marker);
    });
    let outcome = bound::on_thread(BOUND, "recv of a killed worker", move || {
        let outcome = worker.recv();
        (outcome, worker)
    });
    bound::join(killer, BOUND, "the killer");
    assert!(
        matches!(outcome.0, Err(Error::Crashed { .. })),
        "{:?}",
        outcome.0
    );
    bound::until(BOUND, "the killed worker is reaped", || pid::reaped(pid));
}

#[test]
fn answers_nobody_waits_for_are_drained_and_come_back_in_order() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = skprocess::WorkerResource::with_unread_limit(slow_double, 5000).unwrap();
    // More answers than the socket holds: the reader thread must drain them meanwhile.
    for x in 0..5000 {
        worker.send(x).unwrap();
    }
    let status = bound::call(BOUND, "status after the sends", || worker.status()).unwrap();
    assert_eq!(status.items, 5000);
    for x in 0..5000 {
        assert_eq!(worker.recv().unwrap(), x * 2);
    }
    worker.stop().unwrap();
}
