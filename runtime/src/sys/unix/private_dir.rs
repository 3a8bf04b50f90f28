//! Private socket directories, where a listener's socket file lives when it has no abstract
//! name (a socket directory was given, or the OS has no abstract namespace), and the sweep of
//! those whose owner died.
//!
//! A directory is removed with its listener; a SIGKILLed process runs no destructor and no
//! `atexit`, so its directories stay. Each is therefore named after the process that made it,
//! `skp-<pid>-<start>-<unique>` (`start`: the owner's start time, 0 where the OS does not give
//! it cheaply), and whenever a listener binds in a directory it first removes the entries
//! there whose owner is dead ([`sweep`]). What the sweep removes is narrow: a directory (never
//! a link) of this user, with that name, whose owner `kill(pid, 0)` finds gone — or, on Linux,
//! a zombie, or a pid now held by a process that started at another time — and whose socket
//! no longer answers a connection (a process in another pid namespace that shares the
//! directory is thus left alone while it listens). Inside it only the socket file is removed,
//! then the directory if nothing else is there.
//!
//! Limit: outside Linux there is no start time, so a directory whose owner's pid was reused
//! by a live process stays until that process ends too.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::process::{is_running, own_start_time};

/// How every private directory's name starts (and a Linux abstract name too).
pub(super) const PREFIX: &str = "skp-";

/// The socket file inside a private directory.
const SOCKET_FILE: &str = "s";

/// A directory only the current user can enter; removed with everything in it on drop.
#[derive(Debug)]
pub(super) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Sweeps `base` (default: the temp directory) of dead owners' directories, then creates
    /// this process's directory `skp-<pid>-<start>-<unique>` in it with mode 0700.
    pub(super) fn create(base: Option<&Path>, unique: &str) -> io::Result<Self> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        sweep(&base);
        let name = format!(
            "{PREFIX}{}-{}-{unique}",
            std::process::id(),
            own_start_time()
        );
        let path = base.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    /// Where the listener's socket file goes.
    pub(super) fn socket_path(&self) -> PathBuf {
        self.path.join(SOCKET_FILE)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Best effort: the directory is private and holds nothing but our socket.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the private directories in `base` whose owner is dead (see the module's
/// paragraph). Best effort: what cannot be read or removed stays.
pub(super) fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let Some((pid, start)) = owner(&entry.file_name()) else {
            continue;
        };
        if pid != me && !is_running(pid, start) {
            remove_stale(&entry.path());
        }
    }
}

/// The owner's pid and start time from a private directory's name; `None` for any other name.
fn owner(name: &OsStr) -> Option<(u32, u64)> {
    let mut parts = name.to_str()?.strip_prefix(PREFIX)?.splitn(3, '-');
    let pid = digits(parts.next()?)?.parse().ok()?;
    let start = digits(parts.next()?)?.parse().ok()?;
    let unique = parts.next()?;
    let hex = !unique.is_empty() && unique.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then_some((pid, start))
}

fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// Removes a dead owner's directory: only a real directory of this user whose socket no longer
/// answers, and only its socket file with it.
fn remove_stale(path: &Path) {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return;
    };
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let user = unsafe { libc::geteuid() };
    if !metadata.is_dir() || metadata.uid() != user {
        return;
    }
    let socket = path.join(SOCKET_FILE);
    // A socket that still accepts belongs to a live process (in another pid namespace, say).
    // The plain std connect keeps this module below `socket`, which binds through it.
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test, removed at the end.
    struct Base(PathBuf);

    impl Base {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("skp-sweep-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        /// A directory named `name` holding a (dead) socket file.
        fn leftover(&self, name: &str) -> PathBuf {
            let dir = self.0.join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join(SOCKET_FILE), b"").unwrap();
            dir
        }
    }

    impl Drop for Base {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The pid of a process that has ended and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    }

    #[test]
    fn names_carry_their_owner_and_nothing_else_parses() {
        assert_eq!(owner(OsStr::new("skp-42-7-0af3")), Some((42, 7)));
        for other in [
            "skp-0af3",
            "skp-42-0af3",
            "skp-42-7-",
            "skp-42-7-xyz",
            "skp-a-7-0af3",
            "skp--7-0af3",
            "other-42-7-0af3",
            "skp-leftovers-swept-42",
        ] {
            assert_eq!(owner(OsStr::new(other)), None, "{other}");
        }
    }

    #[test]
    fn a_dead_owners_directory_is_swept_and_a_live_ones_is_kept() {
        let base = Base::new("owners");
        let dead = base.leftover(&format!("{PREFIX}{}-0-00ff", dead_pid()));
        let me = std::process::id();
        let mine = base.leftover(&format!("{PREFIX}{me}-{}-00ff", own_start_time()));
        let unknown_start = base.leftover(&format!("{PREFIX}{me}-0-0aff"));
        let not_ours = base.leftover("skp-00ff");
        let parent = std::os::unix::process::parent_id();
        let live = base.leftover(&format!("{PREFIX}{parent}-0-0bff"));
        sweep(&base.0);
        assert!(!dead.exists(), "a dead owner's directory stayed");
        for kept in [&mine, &unknown_start, &not_ours, &live] {
            assert!(kept.exists(), "{kept:?} was swept");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_directory_whose_pid_was_reused_is_swept() {
        let base = Base::new("reused");
        // Our parent's pid with a start time it does not have: the owner was an earlier
        // process with that pid.
        let parent = std::os::unix::process::parent_id();
        let reused = base.leftover(&format!("{PREFIX}{parent}-1-00ff"));
        sweep(&base.0);
        assert!(!reused.exists(), "a reused pid kept its stale directory");
    }

    #[test]
    fn a_directory_that_still_listens_or_holds_more_is_kept() {
        let base = Base::new("kept");
        let listening = base.0.join(format!("{PREFIX}{}-0-00ff", dead_pid()));
        std::fs::create_dir(&listening).unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(listening.join(SOCKET_FILE)).unwrap();
        let fuller = base.leftover(&format!("{PREFIX}{}-0-0aff", dead_pid()));
        std::fs::write(fuller.join("other"), b"").unwrap();
        let file = base.0.join(format!("{PREFIX}{}-0-0bff", dead_pid()));
        std::fs::write(&file, b"").unwrap();
        sweep(&base.0);
        assert!(
            listening.exists(),
            "a listening socket's directory was swept"
        );
        assert!(
            fuller.join("other").exists(),
            "a file that is no socket was removed"
        );
        assert!(file.exists(), "a plain file was swept");
    }

    #[test]
    fn a_new_private_directory_names_its_owner_and_sweeps_first() {
        let base = Base::new("create");
        let dead = base.leftover(&format!("{PREFIX}{}-0-00ff", dead_pid()));
        let dir = PrivateDir::create(Some(&base.0), "0c").unwrap();
        assert!(!dead.exists(), "creating did not sweep");
        let name = dir.path.file_name().unwrap().to_owned();
        assert_eq!(owner(&name), Some((std::process::id(), own_start_time())));
        drop(dir);
        assert_eq!(std::fs::read_dir(&base.0).unwrap().count(), 0);
    }
}
