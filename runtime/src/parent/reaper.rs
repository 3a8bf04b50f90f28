//! The one reaper: every child this process starts — a lifecycle child, a pool worker, a
//! `run` worker, a resident worker — is handed to [`ChildProcess::watch`] the moment it
//! exists. A thread of its own then sleeps in the kernel until the child exits (no polling),
//! reaps it, records how it ended and wakes everyone waiting for that.
//!
//! The `Child` stays in the watcher, unreaped, until its status is taken, so its pid cannot be
//! reused by another process while [`kill`](ChildProcess::kill) may still be sent to it.

use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::parent::exit::Exit;

/// Stack of a reaper thread: it only waits and records a status.
const REAPER_STACK: usize = 64 * 1024;

/// What runs on the reaper's thread once the child was reaped.
type OnExit = Box<dyn FnOnce(&Exit) + Send>;

/// How the child ended, once it was reaped, and what to run then.
#[derive(Default)]
struct Ended {
    exit: Option<Exit>,
    on_exit: Option<OnExit>,
}

/// A started child, watched by the reaper.
pub(crate) struct ChildProcess {
    pid: u32,
    /// The child until it was reaped.
    child: Mutex<Option<Child>>,
    ended: Mutex<Ended>,
    changed: Condvar,
}

impl std::fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildProcess")
            .field("pid", &self.pid)
            .field("exit", &self.exit())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChildProcess {
    /// Hands `child` to the reaper. Without a thread for it, the child is killed and reaped
    /// at once and the error returned.
    pub(crate) fn watch(child: Child) -> Result<Arc<Self>, Error> {
        let process = Arc::new(Self {
            pid: child.id(),
            child: Mutex::new(Some(child)),
            ended: Mutex::new(Ended::default()),
            changed: Condvar::new(),
        });
        let reaper = Arc::clone(&process);
        let spawned = std::thread::Builder::new()
            .name("skprocess-reaper".into())
            .stack_size(REAPER_STACK)
            .spawn(move || reaper.reap_when_exited());
        if let Err(e) = spawned {
            if let Some(mut child) = lock(&process.child).take() {
                let _ = crate::sys::terminate(&mut child);
                let _ = child.wait();
            }
            return Err(Error::Io(e));
        }
        Ok(process)
    }

    /// The reaper thread: waits in the kernel for the exit, then reaps and records it.
    fn reap_when_exited(&self) {
        loop {
            let waited = crate::sys::wait_exited(self.pid);
            if matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::Interrupted) {
                continue;
            }
            let mut slot = lock(&self.child);
            let exit = match slot.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Exit::Status(status),
                // Only a failed wait (never expected for our own child) leaves it running:
                // look again shortly rather than give up on it.
                Some(Ok(None)) => {
                    drop(slot);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Some(Err(_)) | None => Exit::Unknown,
            };
            slot.take();
            drop(slot);
            let on_exit = {
                let mut ended = lock(&self.ended);
                ended.exit = Some(exit.clone());
                ended.on_exit.take()
            };
            self.changed.notify_all();
            if let Some(on_exit) = on_exit {
                on_exit(&exit);
            }
            return;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Ends the child at once (SIGKILL; on Windows `TerminateProcess` with the code that says
    /// "killed") unless it was reaped already; the reaper records its end.
    pub(crate) fn kill(&self) {
        if let Some(child) = lock(&self.child).as_mut() {
            // An error means it exited already: the reaper has it.
            let _ = crate::sys::terminate(child);
        }
    }

    /// How the child ended, if it was reaped; never waits.
    pub(crate) fn exit(&self) -> Option<Exit> {
        lock(&self.ended).exit.clone()
    }

    /// Whether the child ended (and was reaped).
    pub(crate) fn has_exited(&self) -> bool {
        lock(&self.ended).exit.is_some()
    }

    /// Runs `on_exit` on the reaper's thread right after the child was reaped (at once, here,
    /// if it was already), so whoever waits for the end is woken by the reaper itself rather
    /// than through one more thread. It must be short: it runs on the reaper. A second one
    /// replaces the first.
    pub(crate) fn on_exit(&self, on_exit: impl FnOnce(&Exit) + Send + 'static) {
        let mut ended = lock(&self.ended);
        match ended.exit.clone() {
            Some(exit) => {
                drop(ended);
                on_exit(&exit);
            }
            None => ended.on_exit = Some(Box::new(on_exit)),
        }
    }

    /// Waits until the child was reaped or `deadline` (`None`: no deadline) passes.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Option<Exit> {
        let mut ended = lock(&self.ended);
        while ended.exit.is_none() {
            match crate::deadline::wait(&self.changed, ended, deadline) {
                Ok(next) => ended = next,
                Err(last) => return last.exit.clone(),
            }
        }
        ended.exit.clone()
    }

    /// Waits at most `grace` for the child to exit on its own, then kills it; how it ended.
    pub(crate) fn reap(&self, grace: Duration) -> Exit {
        if let Some(exit) = self.wait_until(crate::deadline::after(Some(grace))) {
            return exit;
        }
        self.kill_and_reap()
    }

    /// Kills the child and waits until it was reaped.
    pub(crate) fn kill_and_reap(&self) -> Exit {
        self.kill();
        self.wait_until(None).unwrap_or(Exit::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Set in this test binary when it runs again as one of the helper children below.
    const ENV_HELPER: &str = "SKPROCESS_REAPER_TEST_CHILD";

    /// This test binary started again to run only the helper test `name` (which does its part
    /// only then): a child that behaves the same on every platform.
    fn helper(name: &str) -> std::process::Child {
        Command::new(std::env::current_exe().unwrap())
            .args([&format!("parent::reaper::tests::{name}"), "--exact", "-q"])
            .env(ENV_HELPER, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn is_helper() -> bool {
        std::env::var_os(ENV_HELPER).is_some()
    }

    #[test]
    fn helper_exits_with_3() {
        if is_helper() {
            std::process::exit(3);
        }
    }

    #[test]
    fn helper_sleeps() {
        if is_helper() {
            std::thread::sleep(Duration::from_secs(60));
        }
    }

    /// How the platform says a killed child ended.
    fn killed_in_words() -> String {
        Exit::Status(crate::sys::exit_status_killed()).describe()
    }

    #[test]
    fn the_reaper_records_the_exit_without_being_asked() {
        let process = ChildProcess::watch(helper("helper_exits_with_3")).unwrap();
        let deadline = Instant::now().checked_add(Duration::from_secs(30));
        let exit = process
            .wait_until(deadline)
            .expect("the child was not reaped");
        assert_eq!(exit.describe(), "exited with code 3");
        assert!(process.has_exited());
        process.kill();
        let (sender, receiver) = std::sync::mpsc::channel();
        process.on_exit(move |exit| sender.send(exit.describe()).unwrap());
        assert_eq!(receiver.try_recv().unwrap(), "exited with code 3");
    }

    #[test]
    fn the_reaper_runs_what_was_asked_for_at_the_exit() {
        let process = ChildProcess::watch(helper("helper_sleeps")).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        process.on_exit(move |exit| sender.send(exit.describe()).unwrap());
        process.kill();
        let told = receiver.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(told, killed_in_words());
    }

    #[test]
    fn a_child_that_outlives_its_grace_is_killed() {
        let process = ChildProcess::watch(helper("helper_sleeps")).unwrap();
        assert!(!process.has_exited());
        let exit = process.reap(Duration::from_millis(10));
        assert_eq!(exit.describe(), killed_in_words());
    }

    #[cfg(unix)]
    #[test]
    fn a_kill_is_said_as_the_signal_on_unix() {
        assert_eq!(killed_in_words(), "killed by signal 9 (SIGKILL)");
    }
}
