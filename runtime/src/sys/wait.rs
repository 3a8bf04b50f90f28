//! Waiting for a child to exit without reaping it, so the one reaper (`parent/reaper.rs`)
//! learns of the exit by an event — the kernel wakes it — instead of polling, while the
//! `Child` stays unreaped (its pid cannot be reused) until the reaper takes its status.

use std::io;

/// Blocks until process `pid`, a child of this process, has exited, without reaping it
/// (`waitid` with `WNOWAIT`). Fails with `Interrupted` on a signal (call again) and with the
/// OS error when `pid` is no child of ours.
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let pid = libc::id_t::from(pid);
    // SAFETY: an all-zero siginfo_t is a valid value; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT;
    // SAFETY: `info` is a valid, exclusively borrowed siginfo_t.
    if unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_at_the_exit_and_leaves_the_child_unreaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        loop {
            match wait_exited(child.id()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.unwrap(),
            }
        }
        assert!(
            child.try_wait().unwrap().is_some(),
            "the child was reaped already"
        );
    }
}
