//! The error taxonomy, one case per variant (and per `Peer`, `PanicSite`, `Timed` and `Usage`
//! that a test can reach): each produces the variant through the public API, with real
//! processes, and matches its structured fields.
//!
//! Produced elsewhere, because they need a broken build or a broken environment:
//! `Bootstrap` (`tests/missing_entry_hook.rs`: a test binary without `test_support!()`),
//! `EmptyRegistry` (a binary that registers no process type: `process.rs`'s unit test);
//! `WorkerRefused` needs a worker of another build, which no public call can start (a worker
//! is this process's own image again, `/proc/self/exe` on Linux, even after a rebuild
//! replaced the file; the pool worker's unit test `check_build` refuses another build's start);
//! `TooManyConnections` needs 256 connections to one endpoint (`share::coordinator`'s unit
//! test caps a coordinator at 2 and gets it).
#![cfg(any(target_os = "linux", windows))]

use std::time::Duration;

use skprocess::error::{PanicSite, Peer, Timed, Usage};
use skprocess::pipe::PipeError;
use skprocess::prelude::*;
use skprocess::process::{HookFailure, HookResult, NoMessages};
use skprocess::reconnect::FileRecipe;
use skprocess::{
    ChildSetup, Hook, PipeConfig, PoolConfig, ProcessQueueConfig, QueueConfig, WorkerResource,
};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);
/// The net under the waits that have no per-call bound.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// Fails, panics, sleeps or crashes in `run`, as told.
#[derive(Serialize, Deserialize)]
struct Misbehaves {
    how: How,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
enum How {
    Err,
    Panic,
    Sleep(u64),
    Abort,
}

#[skprocess]
impl Misbehaves {
    fn run(&mut self) -> Result<(), String> {
        match self.how {
            How::Err => Err("returned on purpose".into()),
            How::Panic => panic!("panicked on purpose"),
            How::Sleep(millis) => {
                std::thread::sleep(Duration::from_millis(millis));
                Ok(())
            }
            How::Abort => std::process::abort(),
        }
    }
}

fn outcome(how: How) -> Error {
    Misbehaves { how }
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err()
}

#[test]
fn hook_is_a_hook_that_returned_err() {
    let error = outcome(How::Err);
    assert!(
        matches!(&error, Error::Hook { hook: Hook::Run, run: 0, message } if message == "returned on purpose"),
        "{error:?}"
    );
}

#[test]
fn panicked_in_a_hook_names_the_hook_and_run() {
    let error = outcome(How::Panic);
    assert!(
        matches!(&error, Error::Panicked { site: PanicSite::Hook { hook: Hook::Run, run: 0 }, message, .. } if message.contains("panicked on purpose")),
        "{error:?}"
    );
}

fn panics(x: u64) -> u64 {
    if x == 1 {
        panic!("one is not allowed");
    }
    x
}

#[test]
fn panicked_in_a_function_is_the_same_variant() {
    let _bound = bound::within(TEST_BOUND);
    let worker = skprocess::run(panics as fn(u64) -> u64, (1,)).unwrap();
    let error = worker.join().unwrap_err();
    assert!(
        matches!(&error, Error::Panicked { site: PanicSite::Function, message, .. } if message.contains("one is not allowed")),
        "{error:?}"
    );
}

#[test]
fn item_wraps_what_happened_to_one_pool_item() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let error = pool.map(panics, [0, 1, 2]).unwrap_err();
    assert!(
        matches!(&error, Error::Item { index: 1, error } if matches!(**error, Error::Panicked { site: PanicSite::Function, .. })),
        "{error:?}"
    );
}

#[test]
fn timeout_of_a_hook() {
    let error = Misbehaves {
        how: How::Sleep(5_000),
    }
    .start_with(Misbehaves::default_config().timeout(Hook::Run, Duration::from_millis(200)))
    .unwrap()
    .result_timeout(BOUND)
    .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                limit,
                of: Timed::Hook {
                    hook: Hook::Run,
                    run: 0
                }
            } if limit == Duration::from_millis(200)
        ),
        "{error:?}"
    );
}

fn sleeps(millis: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(millis));
    millis
}

#[test]
fn timeout_of_a_pool_item() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    let error = pool
        .timeout(Duration::from_millis(100))
        .map(sleeps, [5_000])
        .unwrap_err();
    assert!(
        matches!(&error, Error::Item { index: 0, error } if matches!(**error, Error::Timeout { of: Timed::Item, .. })),
        "{error:?}"
    );
}

#[test]
fn timeout_of_a_result() {
    let handle = Misbehaves {
        how: How::Sleep(150),
    }
    .start_with(Misbehaves::default_config().runs(None))
    .unwrap();
    let error = handle
        .result_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(
        matches!(error, Error::Timeout { limit, of: Timed::Result } if limit == Duration::from_millis(100)),
        "{error:?}"
    );
}

#[test]
fn crashed_names_what_ended_the_child() {
    let error = outcome(How::Abort);
    // `abort` is a fail-fast on Windows: NTSTATUS 0xC0000409.
    let name = if cfg!(windows) {
        "STATUS_STACK_BUFFER_OVERRUN"
    } else {
        "SIGABRT"
    };
    assert!(
        matches!(&error, Error::Crashed { status, run: 0 } if status.contains(name)),
        "{error:?}"
    );
}

#[test]
fn killed_after_kill() {
    let handle = Misbehaves {
        how: How::Sleep(150),
    }
    .start_with(Misbehaves::default_config().runs(None))
    .unwrap();
    handle.kill().unwrap();
    let error = handle.result_timeout(BOUND).unwrap_err();
    assert!(matches!(error, Error::Killed), "{error:?}");
}

#[test]
fn gone_process_after_its_lifecycle_is_over() {
    let handle = Misbehaves { how: How::Sleep(0) }.start().unwrap();
    assert!(handle.wait_timeout(BOUND));
    let error = handle.listen_timeout(BOUND).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Gone {
                peer: Peer::Process
            }
        ),
        "{error:?}"
    );
}

fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn gone_pool_after_stop() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    pool.stop().unwrap();
    let error = pool.map(double, [1]).unwrap_err();
    assert!(
        matches!(error, Error::Gone { peer: Peer::Pool }),
        "{error:?}"
    );
}

#[test]
fn gone_pipe_end_after_the_other_end_closed() {
    let _bound = bound::within(TEST_BOUND);
    let (anchor, point) = Pipe::pair::<u32, u32>().unwrap();
    point.send(7).unwrap();
    assert_eq!(anchor.recv_timeout(BOUND).unwrap(), Some(7));
    point.close();
    let error = anchor.recv_timeout(BOUND).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Gone {
                peer: Peer::PipeEnd
            }
        ),
        "{error:?}"
    );
}

/// Reads its queue once the parent says so; reports whether the read failed with the queue
/// gone.
#[derive(Serialize, Deserialize)]
struct LateReader {
    queue: Queue<u64>,
}

#[skprocess(inbox = u64)]
impl LateReader {
    fn run(&mut self) {}

    fn result(&mut self, ctx: &mut Ctx<Self>) -> Result<bool, Error> {
        ctx.listen()?;
        Ok(matches!(
            self.queue.get_timeout(BOUND),
            Err(Error::Gone { peer: Peer::Queue })
        ))
    }
}

#[test]
fn gone_queue_after_its_creator_dropped_it() {
    let queue = Queue::<u64>::new().unwrap();
    let handle = LateReader {
        queue: queue.clone(),
    }
    .start()
    .unwrap();
    drop(queue);
    handle.tell(1).unwrap();
    assert!(handle.result_timeout(BOUND).unwrap(), "not Gone(Queue)");
}

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
    items: Vec<u64>,
}

#[shared]
impl Tally {
    fn fails(&mut self) -> u64 {
        panic!("a shared method failed");
    }
}

/// Uses its share once the parent says so (after connecting first, when `connect`); reports
/// what the call and `pause` said.
#[derive(Serialize, Deserialize)]
struct LateWriter {
    tally: Share<Tally>,
    connect: bool,
}

#[skprocess(inbox = u64, outbox = u64)]
impl LateWriter {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        if self.connect {
            self.tally.count.get()?;
        }
        ctx.tell(1)
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> Result<(bool, String), Error> {
        let not_owner = matches!(self.tally.pause(), Err(Error::Usage(Usage::NotShareOwner)));
        ctx.listen()?;
        Ok((not_owner, format!("{:?}", self.tally.count.get())))
    }
}

#[test]
fn gone_share_and_not_share_owner_in_a_child() {
    // Connected before the share went, and never connected (it was gone at the first call).
    for connect in [true, false] {
        let tally = Share::new(Tally::default()).unwrap();
        let handle = LateWriter {
            tally: tally.clone(),
            connect,
        }
        .start()
        .unwrap();
        assert_eq!(handle.listen_timeout(BOUND).unwrap(), Some(1));
        drop(tally);
        handle.tell(1).unwrap();
        let (not_owner, gone) = handle.result_timeout(BOUND).unwrap();
        assert!(not_owner, "pause in a child was not Usage(NotShareOwner)");
        assert_eq!(
            gone, "Err(Gone { peer: Share })",
            "connected {connect}: a call after the creator dropped the share"
        );
    }
}

#[test]
fn share_paused_and_shared() {
    let tally = Share::new(Tally::default()).unwrap();
    let error = tally.fails().unwrap_err();
    assert!(
        matches!(&error, Error::Panicked { site: PanicSite::SharedMethod { method }, message, location: Some(_), .. }
            if method.ends_with("Tally::fails") && message == "a shared method failed"),
        "{error:?}"
    );
    let error = tally.items.remove(3).unwrap_err();
    assert!(
        matches!(&error, Error::Shared { message } if message.contains("out of range")),
        "{error:?}"
    );
    tally.pause().unwrap();
    assert!(tally.is_paused());
    let error = tally.count.get().unwrap_err();
    assert!(matches!(error, Error::SharePaused), "{error:?}");
    tally.resume().unwrap();
    assert_eq!(tally.count.get().unwrap(), 0);
}

#[derive(Serialize, Deserialize)]
struct Big {
    bytes: Vec<u8>,
}

#[skprocess]
impl Big {
    fn run(&mut self) {}
}

#[test]
fn too_large_has_size_and_limit() {
    let limit = 64 * 1024;
    let error = Big {
        bytes: vec![1; 100_000],
    }
    .start_with(Big::default_config().max_frame_bytes(limit))
    .unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { size, limit: l } if size > 100_000 && l <= u64::from(limit)),
        "{error:?}"
    );
    // A pipe's message limit is the same variant.
    let mut config = PipeConfig::default();
    config.max_message_bytes = 64;
    let (_anchor, point) = Pipe::pair_with::<u8, Vec<u8>>(config).unwrap();
    point.send(vec![0; 4]).unwrap();
    let error = point.send(vec![0; 100]).unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { limit: 64, .. }),
        "{error:?}"
    );
}

/// Never reads its inbox while the test runs.
#[derive(Serialize, Deserialize)]
struct Deaf;

#[skprocess(inbox = u64)]
impl Deaf {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        while !ctx.stop_requested() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn full_when_the_inbox_stays_full() {
    let handle = Deaf
        .start_with(Deaf::default_config().inbox_capacity(1))
        .unwrap();
    handle.try_tell(1).unwrap();
    let error: Error = handle.try_tell(2).unwrap_err().into();
    assert!(matches!(error, Error::Full), "{error:?}");
    handle.request_stop();
    handle.result_timeout(BOUND).unwrap();
}

fn echo(x: u64) -> u64 {
    x
}

#[test]
fn too_many_unread_and_the_resource_usage_errors() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = WorkerResource::with_unread_limit(echo, 1).unwrap();
    let error = worker.recv().unwrap_err();
    assert!(
        matches!(error, Error::Usage(Usage::NothingPending)),
        "{error:?}"
    );
    worker.send(1).unwrap();
    let error = worker.send(2).unwrap_err();
    assert!(
        matches!(error, Error::TooManyUnread { limit: 1 }),
        "{error:?}"
    );
    let error = worker.execute(3).unwrap_err();
    assert!(
        matches!(error, Error::Usage(Usage::UnreadResults { unread: 1 })),
        "{error:?}"
    );
    assert_eq!(worker.recv().unwrap(), 1);
    worker.stop().unwrap();
}

#[test]
fn usage_thread_not_killable_and_already_joined() {
    let _bound = bound::within(TEST_BOUND);
    let mut worker = skprocess::run_thread(echo as fn(u64) -> u64, (5,)).unwrap();
    let error = worker.kill().unwrap_err();
    assert!(
        matches!(error, Error::Usage(Usage::ThreadNotKillable)),
        "{error:?}"
    );
    assert_eq!(worker.join_timeout(BOUND).unwrap(), Some(5));
    let error = worker.join_timeout(BOUND).unwrap_err();
    assert!(
        matches!(error, Error::Usage(Usage::AlreadyJoined)),
        "{error:?}"
    );
}

/// Tells its parent from a pool item, where there is none.
#[derive(Serialize, Deserialize)]
struct Teller;

#[skprocess(outbox = u64)]
impl Teller {
    fn run(&mut self) {}

    fn result(&mut self, ctx: &mut Ctx<Self>) -> bool {
        matches!(ctx.tell(1), Err(Error::Usage(Usage::NoParentLink)))
    }
}

#[test]
fn usage_no_parent_link_in_a_pool_item() {
    let _bound = bound::within(TEST_BOUND);
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.map_processes([Teller]).unwrap(), [true]);
}

fn handle_nothing(_: u64) {}

#[test]
fn process_queue_full() {
    let config = ProcessQueueConfig::default().capacity(1);
    let queue = ProcessQueue::with_config(handle_nothing, config).unwrap();
    let error = queue.start([1, 2]).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ProcessQueueFull {
                capacity: 1,
                adding: 2,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn config_names_the_problem() {
    let error = Deaf
        .start_with(Deaf::default_config().lives(0))
        .unwrap_err();
    assert!(
        matches!(&error, Error::Config { problem } if problem.contains("lives")),
        "{error:?}"
    );
}

/// Its live file cannot be opened in the child.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct MissingFile {
    file: Live<std::fs::File>,
}

#[skprocess]
impl MissingFile {
    fn run(&mut self) {}
}

#[test]
fn reopen_when_a_live_resource_cannot_open() {
    let handle = MissingFile {
        file: Live::deferred(FileRecipe::read("/nonexistent/skprocess-error-taxonomy")),
    }
    .start()
    .unwrap();
    let error = handle.result_timeout(BOUND).unwrap_err();
    assert!(
        matches!(&error, Error::Reopen { run: 0, message } if message.contains("file")),
        "{error:?}"
    );
}

/// An output that postcard cannot carry: a skipped field shifts the next one.
#[derive(Serialize, Deserialize, Debug)]
struct Shifted {
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<u8>,
    second: u64,
}

#[derive(Serialize, Deserialize)]
struct ShiftedOutput;

#[skprocess]
impl ShiftedOutput {
    fn run(&mut self) {}

    fn result(&mut self) -> Shifted {
        Shifted {
            first: None,
            second: 7,
        }
    }
}

/// A state that postcard cannot carry: the sender's debug check refuses it at `start`.
#[derive(Serialize, Deserialize)]
struct SkipsField {
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<u8>,
    second: u64,
}

#[skprocess]
impl SkipsField {
    fn run(&mut self) {}
}

#[test]
#[cfg(debug_assertions)]
fn encoding_names_the_type_and_the_likely_attribute() {
    let error = SkipsField {
        first: None,
        second: 7,
    }
    .start()
    .unwrap_err();
    assert!(
        matches!(&error, Error::Encoding { type_name, likely, .. } if type_name.contains("SkipsField") && likely.contains("skip_serializing_if")),
        "{error:?}"
    );
}

#[test]
fn malformed_when_bytes_do_not_decode() {
    let error = ShiftedOutput
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    assert!(matches!(error, Error::Malformed { .. }), "{error:?}");
}

#[test]
fn queue_message_when_a_message_is_of_another_type() {
    let queue = Queue::<u64>::new().unwrap();
    queue.put(5).unwrap();
    let bytes = skprocess::__private::wire::encode(&queue).unwrap();
    let retyped: Queue<String> = skprocess::__private::wire::decode(&bytes).unwrap();
    let error = retyped.get_timeout(BOUND).unwrap_err();
    assert!(
        matches!(error, Error::QueueMessage { type_name, .. } if type_name.contains("String")),
        "{error:?}"
    );
}

#[test]
fn pipe_when_no_point_connects() {
    let mut config = PipeConfig::default();
    config.accept_timeout = Duration::from_millis(50);
    let (anchor, _point) = Pipe::pair_with::<u8, u8>(config).unwrap();
    let error = anchor.recv().unwrap_err();
    assert!(
        matches!(error, Error::Pipe(PipeError::NotConnected { waited }) if waited == Duration::from_millis(50)),
        "{error:?}"
    );
}

#[test]
fn io_when_the_socket_directory_cannot_be_used() {
    let mut config = QueueConfig::default();
    config.socket_dir = Some("/nonexistent/skprocess-error-taxonomy".into());
    let error = Queue::<u64>::with_config(config).unwrap_err();
    assert!(matches!(error, Error::Io(_)), "{error:?}");
}

/// A process type implemented by hand and never registered (no `skprocess::register!`): a
/// child of this binary does not know its key.
#[derive(Serialize, Deserialize)]
struct Unregistered;

impl Process for Unregistered {
    type Output = ();
    type Inbox = NoMessages;
    type Outbox = NoMessages;
    const KEY: &'static str = "error_taxonomy::Unregistered";

    fn run(&mut self, _: &mut Ctx<Self>) -> HookResult {
        Ok(())
    }

    fn result(&mut self, _: &mut Ctx<Self>) -> Result<(), HookFailure> {
        Ok(())
    }
}

#[test]
fn unknown_type_when_the_child_does_not_know_the_key() {
    let _bound = bound::within(TEST_BOUND);
    let error = Unregistered
        .start()
        .and_then(|handle| handle.result_timeout(BOUND))
        .unwrap_err();
    assert!(
        matches!(&error, Error::UnknownType { key } if key == Unregistered::KEY),
        "{error:?}"
    );
    assert!(error.to_string().contains(Unregistered::KEY), "{error}");
}

/// A working directory that does not exist.
fn missing_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("skprocess-no-such-dir-{}", std::process::id()))
}

#[test]
fn spawn_when_the_working_directory_does_not_exist() {
    let _bound = bound::within(TEST_BOUND);
    // CreateProcess refuses a missing working directory with ERROR_DIRECTORY (267).
    let kind = if cfg!(windows) {
        std::io::ErrorKind::NotADirectory
    } else {
        std::io::ErrorKind::NotFound
    };
    let is_spawn = |error: &Error| matches!(error, Error::Spawn(io) if io.kind() == kind);
    let config = Deaf::default_config().current_dir(missing_dir());
    let error = Deaf.start_with(config).unwrap_err();
    assert!(is_spawn(&error), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("failed to spawn child process"),
        "{error}"
    );
    let setup = ChildSetup::default().current_dir(missing_dir());
    let error = skprocess::run_with(double as fn(u64) -> u64, (1,), setup.clone())
        .map(drop)
        .unwrap_err();
    assert!(is_spawn(&error), "run_with: {error:?}");
    let error = WorkerResource::with_setup(double, setup)
        .map(drop)
        .unwrap_err();
    assert!(is_spawn(&error), "WorkerResource: {error:?}");
}

#[test]
fn no_worker_when_no_pool_worker_can_start() {
    let _bound = bound::within(TEST_BOUND);
    let config = PoolConfig::default().workers(2).current_dir(missing_dir());
    let error = Pool::with_config(config).map(drop).unwrap_err();
    assert!(
        matches!(&error, Error::NoWorker { reason } if reason.contains("failed to spawn")),
        "{error:?}"
    );
}
