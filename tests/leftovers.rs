//! Nothing in the filesystem outlives its process: a process that holds every long-lived
//! service (share, queue, pipe anchor, process queue, the log collector of its own child) is
//! SIGKILLed, and the temp directory it used is left empty. With a socket directory (no
//! abstract names), what a SIGKILLed process left there is swept by the next process that
//! binds there. On Windows the process is ended by `TerminateProcess` and, its connections
//! being named pipes that live in no directory, nothing is ever left in a socket directory.
#![cfg(any(target_os = "linux", windows))]

use std::path::PathBuf;
use std::time::Duration;

use skprocess::prelude::*;
use skprocess::reconnect::Secret;
use skprocess::{Pipe, ProcessQueue};
#[cfg(unix)]
use skprocess::{PipeConfig, ProcessQueueConfig, QueueConfig};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

#[path = "support/pid.rs"]
mod pid;
use pid::running;

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[shared]
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    counter: u64,
}

#[derive(Serialize, Deserialize)]
struct Sleeper;

#[skprocess(runs = None)]
impl Sleeper {
    fn run(&mut self) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ignore(_: u64) {}

/// Opens every service, starts a child (which starts the log collector), reports the child's
/// pid and then holds everything until it is killed.
#[derive(Serialize, Deserialize)]
struct Owner;

#[skprocess(outbox = u32)]
impl Owner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let mut share = Share::new(Tally::default())?;
        share.counter += 1;
        let queue: Queue<u64> = Queue::new()?;
        queue.put(1)?;
        let (_anchor, _point) = Pipe::pair::<u32, u32>().map_err(|e| Error::Bootstrap {
            detail: e.to_string(),
        })?;
        let process_queue = ProcessQueue::new(ignore);
        process_queue.start([1u64])?;
        let child = Sleeper.start()?;
        ctx.tell(child.pid())?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Opens every service that takes a socket directory in `dir`, starts a child there (which
/// starts this process's log collector in `dir`), reports the child's pid and then holds
/// everything until it is killed.
#[cfg(unix)]
#[derive(Serialize, Deserialize)]
struct DirOwner {
    dir: PathBuf,
}

#[cfg(unix)]
#[skprocess(outbox = u32)]
impl DirOwner {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let mut queue_config = QueueConfig::default();
        queue_config.socket_dir = Some(self.dir.clone());
        let queue: Queue<u64> = Queue::with_config(queue_config)?;
        queue.put(1)?;
        let mut pipe_config = PipeConfig::default();
        pipe_config.socket_dir = Some(self.dir.clone());
        let (_anchor, _point) =
            Pipe::pair_with::<u32, u32>(pipe_config).map_err(|e| Error::Bootstrap {
                detail: e.to_string(),
            })?;
        let mut queue_config = ProcessQueueConfig::default();
        queue_config.socket_dir = Some(self.dir.clone());
        let process_queue = ProcessQueue::with_config(ignore, queue_config)?;
        process_queue.start([1u64])?;
        let child = Sleeper.start_with(Sleeper::default_config().socket_dir(&self.dir))?;
        ctx.tell(child.pid())?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Ends after one run.
#[cfg(unix)]
#[derive(Serialize, Deserialize)]
struct Once;

#[cfg(unix)]
#[skprocess(runs = 1)]
impl Once {
    fn run(&mut self) {}
}

fn private_temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skp-leftovers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_sigkilled_owner_of_every_service_leaves_nothing_in_its_temp_dir() {
    let _bound = bound::within(TEST_BOUND);
    let dir = private_temp_dir("services");
    // The variable `std::env::temp_dir` reads first.
    let variable = if cfg!(windows) { "TMP" } else { "TMPDIR" };
    let config = Owner::default_config()
        .secret_env(variable, Secret::new(dir.to_string_lossy().into_owned()));
    let owner = Owner.start_with(config).unwrap();
    let child = owner
        .listen_timeout(BOUND)
        .unwrap()
        .expect("the owner reported its child");
    pid::kill(owner.pid());
    assert!(matches!(
        owner.result_timeout(BOUND),
        Err(Error::Crashed { .. })
    ));
    bound::until(BOUND, "the owner's child exits with it", || !running(child));
    assert_eq!(
        entries(&dir),
        Vec::<String>::new(),
        "left behind in {dir:?}"
    );
    std::fs::remove_dir(&dir).unwrap();
}

// Unix by nature: on Windows nothing lives in a socket directory to be swept.
#[cfg(unix)]
#[test]
fn what_a_sigkilled_process_left_in_a_socket_dir_is_swept_by_the_next_start_there() {
    let _bound = bound::within(TEST_BOUND);
    let dir = private_temp_dir("swept");
    let owner = DirOwner { dir: dir.clone() }.start().unwrap();
    let child = owner
        .listen_timeout(BOUND)
        .unwrap()
        .expect("the owner reported its child");
    let owner_pid = owner.pid();
    pid::signal(owner_pid, libc::SIGKILL);
    assert!(matches!(
        owner.result_timeout(BOUND),
        Err(Error::Crashed { .. })
    ));
    bound::until(BOUND, "the owner's child exits with it", || !running(child));
    bound::until(BOUND, "the owner is reaped", || pid::reaped(owner_pid));
    let left = entries(&dir);
    assert!(
        left.len() >= 4,
        "the queue, pipe, process queue and log collector left no directory: {left:?}"
    );

    let next = Once
        .start_with(Once::default_config().socket_dir(&dir))
        .unwrap();
    next.result_timeout(BOUND).unwrap();
    let remaining = entries(&dir);
    let stale: Vec<&String> = left.iter().filter(|e| remaining.contains(e)).collect();
    assert!(stale.is_empty(), "not swept from {dir:?}: {stale:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
