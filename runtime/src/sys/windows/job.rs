//! No child outlives its parent on Windows, from both ends.
//!
//! - The parent puts every child it starts ([`spawn`]) into one Job Object of its own, made
//!   with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`. Its handle is never closed and is not
//!   inheritable, so it closes exactly when the parent ends — however it ends, `TerminateProcess`
//!   included — and Windows then ends every process in the job, grandchildren too (children of
//!   a job's process join the job). The child is assigned right after it is created and before
//!   it is sent its start message, so no user code of it can start a process outside the job.
//! - A child watches its parent's process handle ([`watch_parent`]) and ends itself when the
//!   parent ends: this covers a child started by a parent whose job could not hold it.
//!
//! Handles: std creates its own handles (files, sockets, pipes) non-inheritable and makes only
//! the child's standard streams inheritable for the duration of a spawn, under a lock; the job
//! handle is made non-inheritable here. So a child inherits only its standard streams.

use std::io;
use std::os::windows::io::AsRawHandle;
use std::process::{Child, Command};
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{
    FILETIME, GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT, INVALID_HANDLE_VALUE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetProcessTimes, INFINITE, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE, WaitForSingleObject,
};

use super::process::{Process, terminate};

/// The job every child of this process runs in; never closed (see the module's paragraph).
struct Job(HANDLE);

// SAFETY: a job handle is a kernel object reference usable from any thread; it is never closed.
unsafe impl Send for Job {}
// SAFETY: as above; the handle is only passed to thread-safe kernel calls.
unsafe impl Sync for Job {}

/// The job, made on first use; the error of making it is kept too (it is not retried).
fn job() -> io::Result<&'static Job> {
    static JOB: OnceLock<Result<Job, i32>> = OnceLock::new();
    match JOB.get_or_init(|| create_job().map_err(|e| e.raw_os_error().unwrap_or(0))) {
        Ok(job) => Ok(job),
        Err(code) => Err(io::Error::from_raw_os_error(*code)),
    }
}

fn create_job() -> io::Result<Job> {
    // SAFETY: no attributes (so the handle is not inheritable) and no name.
    let handle = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero limit structure is valid; one flag is set below.
    let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: `limits` is a valid structure of the size passed, for the class named.
    let set = unsafe {
        SetInformationJobObject(
            handle,
            JobObjectExtendedLimitInformation,
            std::ptr::from_ref(&limits).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if set == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Job(handle))
}

/// `ERROR_INTERNAL_ERROR`: what Wine answers now and then, on a loaded machine, to a spawn
/// that succeeds when made again — Wine's answer when the new process ended before it reported
/// its start (CI, 2026-12: one pool worker of four in `share_scenarios`; the middle process of
/// `a_watching_child_ends_itself_when_its_parent_dies`). Another error, or this one three times,
/// is the caller's.
const ERROR_INTERNAL_ERROR: i32 = 1359;

/// Starts `command` as a child inside this process's job (see the module's paragraph). A
/// child that cannot join the job is ended and the error returned.
pub(crate) fn spawn(command: &mut Command) -> io::Result<Child> {
    let job = job()?;
    let mut child = spawn_outside_job(command)?;
    // SAFETY: both handles are open: the job's for the life of the process, the child's while
    // `child` lives.
    if unsafe { AssignProcessToJobObject(job.0, child.as_raw_handle()) } == 0 {
        let error = io::Error::last_os_error();
        // Windows keeps no zombie: ended, and its handle closed with `child`, it is gone.
        let _ = terminate(&mut child);
        return Err(error);
    }
    Ok(child)
}

/// `command.spawn()`, made again (at most twice, 20 ms apart) when it fails with
/// [`ERROR_INTERNAL_ERROR`]. The child is in no job of this process's making.
pub(super) fn spawn_outside_job(command: &mut Command) -> io::Result<Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(error) if error.raw_os_error() == Some(ERROR_INTERNAL_ERROR) && attempt < 2 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            spawned => return spawned,
        }
    }
}

/// Whether `handle` would be inherited by a child.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn is_inheritable(handle: HANDLE) -> io::Result<bool> {
    let mut flags = 0u32;
    // SAFETY: `flags` is a valid out-parameter; a bad handle fails the call.
    if unsafe { GetHandleInformation(handle, &mut flags) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & HANDLE_FLAG_INHERIT != 0)
}

/// The job's handle, for the test that it is not inherited.
#[cfg(test)]
pub(super) fn job_handle() -> io::Result<HANDLE> {
    job().map(|job| job.0)
}

/// Ends this process with `code` (at once, as [`super::exit_now`]) when its parent ends. The
/// parent is opened now, by pid, and accepted only if it started before this process (a pid
/// reused after the parent died belongs to a younger process): a parent that is gone already
/// ends this process at once. Fails only without a thread to wait on.
pub(crate) fn watch_parent(code: i32) -> io::Result<()> {
    let access = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
    let parent = parent()
        .and_then(|pid| Process::open(pid, access).ok())
        .filter(|parent| started_before_me(parent.raw()));
    let Some(parent) = parent else {
        super::process::exit_now(code)
    };
    std::thread::Builder::new()
        .name("skprocess-parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // SAFETY: an open handle with SYNCHRONIZE access, owned by this thread.
            if unsafe { WaitForSingleObject(parent.raw(), INFINITE) } == WAIT_OBJECT_0 {
                super::process::exit_now(code);
            }
        })
        .map(drop)
}

/// Whether the process behind `handle` was created before this one.
fn started_before_me(handle: HANDLE) -> bool {
    // SAFETY: the pseudo-handle of this process is always valid.
    match (
        creation_time(handle),
        creation_time(unsafe { GetCurrentProcess() }),
    ) {
        (Some(theirs), Some(mine)) => theirs <= mine,
        // Unknown: trust the pid rather than end a child whose parent may well live.
        _ => true,
    }
}

/// When the process behind `handle` was created, in 100 ns ticks since 1601.
fn creation_time(handle: HANDLE) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: four valid out-parameters; `handle` is a process handle with query access.
    let ok = unsafe { GetProcessTimes(handle, &mut created, &mut exited, &mut kernel, &mut user) };
    (ok != 0).then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

/// The pid of this process's parent, 0 when it cannot be learned.
pub(crate) fn parent_pid() -> u32 {
    parent().unwrap_or(0)
}

/// The pid of this process's parent (from a process snapshot; computed once).
fn parent() -> Option<u32> {
    static PARENT: OnceLock<Option<u32>> = OnceLock::new();
    *PARENT.get_or_init(|| find_parent(std::process::id()))
}

fn find_parent(pid: u32) -> Option<u32> {
    // SAFETY: a plain call; the snapshot handle is checked and closed below.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snapshot == INVALID_HANDLE_VALUE || snapshot.is_null() {
        return None;
    }
    let snapshot = Snapshot(snapshot);
    // SAFETY: an all-zero entry is valid; its size field is set as the API requires.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = size_of::<PROCESSENTRY32W>() as u32;
    // SAFETY: `entry` is a valid, exclusively borrowed entry with its size set.
    let mut more = unsafe { Process32FirstW(snapshot.0, &mut entry) } != 0;
    while more {
        if entry.th32ProcessID == pid {
            return Some(entry.th32ParentProcessID);
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(snapshot.0, &mut entry) } != 0;
    }
    None
}

/// A snapshot handle, closed on drop.
struct Snapshot(HANDLE);

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: the snapshot was opened by `find_parent` and is closed only here.
        unsafe { windows_sys::Win32::Foundation::CloseHandle(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::process::tests::{
        exit_code_within, is_rerun, open_for_wait, read_marked, rerun,
    };
    use super::*;
    use std::process::Stdio;
    use std::time::Duration;

    #[test]
    fn the_job_handle_is_not_inherited() {
        assert!(!is_inheritable(job_handle().unwrap()).unwrap());
    }

    /// Starts a sleeper in this process's job, says its pid, and sleeps (until the test ends
    /// it: nothing here waits for the sleeper, and Windows keeps no zombies).
    #[allow(clippy::zombie_processes)]
    #[test]
    fn helper_starts_a_child_in_its_job() {
        if is_rerun() {
            let mut sleeper = rerun("process::tests::helper_sleeps");
            let child = spawn(sleeper.stdout(Stdio::null())).unwrap();
            println!("pid={}", child.id());
            std::thread::sleep(Duration::from_secs(120));
        }
    }

    /// Starts a child that watches it (outside any job), says its pid, and sleeps (until the
    /// test ends it).
    #[allow(clippy::zombie_processes)]
    #[test]
    fn helper_starts_a_watching_child() {
        if is_rerun() {
            let mut watcher = rerun("job::tests::helper_watches_its_parent");
            let child = spawn_outside_job(watcher.stdout(Stdio::null())).unwrap();
            println!("pid={}", child.id());
            std::thread::sleep(Duration::from_secs(120));
        }
    }

    #[test]
    fn helper_watches_its_parent() {
        if is_rerun() {
            watch_parent(70).unwrap();
            std::thread::sleep(Duration::from_secs(120));
        }
    }

    /// Starts `helper` as a middle process, kills it once it started its own child, and
    /// returns how that grandchild ended (`None`: it outlived its parent by 30 s).
    fn grandchild_after_its_parent_is_killed(helper: &str) -> Option<u32> {
        let mut middle = spawn_outside_job(rerun(helper).stdout(Stdio::piped())).unwrap();
        let pid: u32 = read_marked(&mut middle, "pid=");
        let grandchild = open_for_wait(pid);
        super::super::process::terminate(&mut middle).unwrap();
        middle.wait().unwrap();
        let code = exit_code_within(&grandchild, Duration::from_secs(30));
        if code.is_none() {
            let _ = super::super::process::kill(pid);
        }
        code
    }

    #[test]
    fn a_child_in_the_job_dies_with_its_parent() {
        let ended =
            grandchild_after_its_parent_is_killed("job::tests::helper_starts_a_child_in_its_job");
        assert!(ended.is_some(), "the child outlived its parent");
    }

    #[test]
    fn a_watching_child_ends_itself_when_its_parent_dies() {
        let ended =
            grandchild_after_its_parent_is_killed("job::tests::helper_starts_a_watching_child");
        assert_eq!(
            ended,
            Some(70),
            "the child did not end itself with its code"
        );
    }

    #[test]
    fn a_parent_is_found_by_pid() {
        // Under Wine a process started from Linux has parent 0; a real pid is checked by
        // `a_child_knows_its_parent`.
        assert!(find_parent(std::process::id()).is_some());
        assert_eq!(find_parent(u32::MAX - 3), None);
    }
}
