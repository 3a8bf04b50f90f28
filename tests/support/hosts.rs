//! Worker hosts for cluster tests: each host is this test binary started again into its
//! hidden `test_support!()` entry with `SKPROCESS_SERVE` set, in a process group of its own
//! (the host and its local pool's workers), so a test can SIGKILL a whole "machine".
//! Included with `#[path = "support/hosts.rs"] mod hosts;` beside `test_support!()`.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A host process serving a cluster; its process group is killed on drop.
pub struct Host {
    child: Option<Child>,
    pid: u32,
}

impl Host {
    /// Starts a host of this test binary serving cluster `name` on the Redis server at `url`
    /// (`redis://127.0.0.1:<port>/0`, usually a proxy's), with `workers` local workers and
    /// the extra environment `env`.
    pub fn start(url: &str, name: &str, workers: usize, env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([
                "__skprocess_child_entry",
                "--exact",
                "--nocapture",
                "-q",
                "--test-threads=1",
            ])
            .env("SKPROCESS_SERVE", format!("{url}/{name}"))
            .env("SKPROCESS_SERVE_WORKERS", workers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0);
        for (key, value) in env {
            command.env(key, value);
        }
        die_with_this_thread(&mut command);
        let child = command.spawn().expect("starting a host");
        let pid = child.id();
        Self {
            child: Some(child),
            pid,
        }
    }

    /// The host's process id (also its process group's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILLs the host and every process of its group (its workers), and reaps the host.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = i32::try_from(self.pid).expect("a pid fits in i32");
            // SAFETY: signals a process group this test created; no memory is involved.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the host process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the process `command` starts get SIGKILL when the thread that starts it ends (Linux),
/// so a test binary aborted by its bound leaves no host or server behind. Elsewhere nothing.
pub fn die_with_this_thread(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and calls only `prctl`, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
