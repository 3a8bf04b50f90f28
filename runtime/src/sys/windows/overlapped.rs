//! Overlapped I/O on a handle opened with `FILE_FLAG_OVERLAPPED`: an operation is started on
//! one thread, waited for with a time limit, and cancelled (`CancelIoEx`) when the time runs
//! out, so reads and writes of one pipe end never serialize behind each other the way
//! synchronous I/O on one file object does. Every operation is waited for to the end before
//! its `OVERLAPPED` leaves the stack, cancelled or not.
//!
//! Windows (and Wine) cancel the I/O a thread started when that thread exits — a write left
//! in flight by a caller's thread that then ended would be lost, and with it the frame
//! stream. So a connected pipe's writes outlive their threads ([`outlive_threads`]): its
//! handle is bound to this process's one completion port, and a write is a [`PortOp`], whose
//! `OVERLAPPED` carries no event (Wine keeps such an operation past its thread; Windows keeps
//! every operation of a bound handle) — the port's thread sets the write's event when its
//! packet comes. Writes that finish at once post no packet (`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`).
//! Every other `OVERLAPPED` ([`overlapped`]: reads, connects) carries its event with the low
//! bit set, which asks for no packet at all: those run on threads that outlive them.

use std::collections::BTreeSet;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, ERROR_OPERATION_ABORTED, GetLastError, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::SetFileCompletionNotificationModes;
use windows_sys::Win32::System::IO::{
    CancelIoEx, CreateIoCompletionPort, GetOverlappedResult, GetQueuedCompletionStatus, OVERLAPPED,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, INFINITE, ResetEvent, SetEvent, WaitForSingleObject,
};

/// An event object, closed on drop.
#[derive(Debug)]
pub(super) struct Event(OwnedHandle);

impl Event {
    /// A new event, not signalled; `manual`: it stays signalled until reset.
    pub(super) fn new(manual: bool) -> io::Result<Self> {
        // SAFETY: no security attributes and no name; the call only creates an object.
        let raw = unsafe { CreateEventW(std::ptr::null(), i32::from(manual), 0, std::ptr::null()) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh handle this value alone owns.
        Ok(Self(unsafe { OwnedHandle::from_raw_handle(raw) }))
    }

    /// The handle, for `OVERLAPPED` and waits.
    pub(super) fn raw(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// Signals the event.
    pub(super) fn set(&self) {
        // SAFETY: the handle is a live event.
        unsafe { SetEvent(self.raw()) };
    }

    /// Clears the event.
    pub(super) fn reset(&self) {
        // SAFETY: the handle is a live event.
        unsafe { ResetEvent(self.raw()) };
    }
}

/// An `OVERLAPPED` that completes on `event`, and posts no completion packet.
pub(super) fn overlapped(event: HANDLE) -> OVERLAPPED {
    // SAFETY: an all-zero OVERLAPPED is the documented starting value.
    let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
    ov.hEvent = (event as usize | 1) as HANDLE;
    ov
}

/// The event an `OVERLAPPED` of [`overlapped`] completes on (without the tag bit).
fn event_of(ov: &OVERLAPPED) -> HANDLE {
    (ov.hEvent as usize & !1) as HANDLE
}

/// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` (winbase.h): no packet for an operation that
/// finishes in the call that started it.
const SKIP_PACKET_ON_SUCCESS: u8 = 1;

/// An operation whose end comes as a packet of the process's completion port: the
/// `OVERLAPPED` first, so a packet's pointer is the operation's, then the event the port's
/// thread sets for it. It must stay in place until its event is set.
#[repr(C)]
pub(super) struct PortOp {
    /// The operation's `OVERLAPPED`, without an event.
    pub(super) ov: OVERLAPPED,
    event: HANDLE,
}

/// The addresses of the [`PortOp`]s alive in this process: the port's thread delivers a packet
/// only to one of them, whatever else a platform might post.
static LIVE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PortOp {
    /// An operation that signals `event` when it ends, in place on the heap (a packet names
    /// it by its address).
    pub(super) fn boxed(event: HANDLE) -> Box<Self> {
        // SAFETY: an all-zero OVERLAPPED is the documented starting value.
        let ov = unsafe { std::mem::zeroed() };
        let op = Box::new(Self { ov, event });
        live().insert(std::ptr::from_ref(&*op) as usize);
        op
    }

    /// A fresh `OVERLAPPED` for the next operation.
    pub(super) fn reset(&mut self) -> *mut OVERLAPPED {
        // SAFETY: as above.
        self.ov = unsafe { std::mem::zeroed() };
        &mut self.ov
    }
}

impl Drop for PortOp {
    fn drop(&mut self) {
        live().remove(&(std::ptr::from_ref(self) as usize));
    }
}

/// The process's one completion port, and the thread that turns its packets into the
/// events of their [`PortOp`]s; made on first use, kept for the life of the process.
fn port() -> io::Result<HANDLE> {
    static PORT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let port = *PORT.get_or_init(|| {
        // SAFETY: a new port of no file.
        let port = unsafe {
            CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) as usize
        };
        let spawned = std::thread::Builder::new()
            .name("skprocess-io-port".into())
            .stack_size(64 * 1024)
            .spawn(move || deliver_packets(port as HANDLE));
        if port == 0 || spawned.is_err() {
            0
        } else {
            port
        }
    });
    if port == 0 {
        return Err(io::Error::other(
            "no I/O completion port and thread could be made",
        ));
    }
    Ok(port as HANDLE)
}

/// The port's thread: sets the event of each operation whose packet comes, succeeded or not.
fn deliver_packets(port: HANDLE) {
    loop {
        let (mut bytes, mut key) = (0u32, 0usize);
        let mut ov: *mut OVERLAPPED = std::ptr::null_mut();
        // SAFETY: `port` is a live port; the out-pointers are valid for the call.
        unsafe { GetQueuedCompletionStatus(port, &mut bytes, &mut key, &mut ov, INFINITE) };
        let live = live();
        if live.contains(&(ov as usize)) {
            // SAFETY: `ov` is a live `PortOp` (its `OVERLAPPED` is its first field), and it
            // cannot be freed while `LIVE` is locked here.
            unsafe { SetEvent((*ov.cast::<PortOp>()).event) };
        }
    }
}

/// Makes the writes started on `handle` outlive the thread that started them: binds it to the
/// process's completion port (see the module's text). Each handle is bound once, before its
/// first write.
pub(super) fn outlive_threads(handle: HANDLE) -> io::Result<()> {
    let port = port()?;
    // SAFETY: `handle` is an open handle opened for overlapped I/O; `port` is a live port.
    if unsafe { CreateIoCompletionPort(handle, port, 0, 0) }.is_null() {
        return Err(io::Error::last_os_error());
    }
    // Without this, a write that finished at once would post a packet too, late enough to
    // wake the next write's waiter.
    // SAFETY: a plain call on an open handle.
    if unsafe { SetFileCompletionNotificationModes(handle, SKIP_PACKET_ON_SUCCESS) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the call that started an operation (its `BOOL` result is `started`) left it
/// running or done; an immediate failure is the error.
pub(super) fn check_start(started: i32) -> io::Result<()> {
    if started != 0 {
        return Ok(());
    }
    // SAFETY: reads the calling thread's last error.
    match unsafe { GetLastError() } {
        ERROR_IO_PENDING => Ok(()),
        error => Err(io::Error::from_raw_os_error(error as i32)),
    }
}

/// Waits for the operation described by `ov` on `handle` until `deadline` (`None`: without
/// limit), cancels it if it is still running then, and returns the bytes it transferred and
/// whether it was cancelled. A cancellation by another thread (`CancelIoEx` on close) is
/// reported as `ErrorKind::Interrupted`.
pub(super) fn finish(
    handle: HANDLE,
    ov: &mut OVERLAPPED,
    deadline: Option<Instant>,
) -> io::Result<(usize, bool)> {
    let mut timed_out = false;
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: the event is live for as long as `ov` is in use.
        if unsafe { WaitForSingleObject(event_of(ov), millis(Some(left))) } != WAIT_OBJECT_0 {
            timed_out = true;
            // SAFETY: `ov` names an operation started on `handle` and still in flight or done.
            unsafe { CancelIoEx(handle, ov) };
        }
    }
    let mut transferred = 0u32;
    // SAFETY: `ov` stays alive and in place until this call, which waits for the end, returns.
    if unsafe { GetOverlappedResult(handle, ov, &mut transferred, 1) } != 0 {
        return Ok((transferred as usize, false));
    }
    // SAFETY: reads the calling thread's last error.
    match unsafe { GetLastError() } {
        ERROR_OPERATION_ABORTED if timed_out => Ok((transferred as usize, true)),
        ERROR_OPERATION_ABORTED => Err(io::ErrorKind::Interrupted.into()),
        error => Err(io::Error::from_raw_os_error(error as i32)),
    }
}

/// A wait's time limit in milliseconds: `INFINITE` without one, and a sub-millisecond rest
/// rounded up so that a short wait waits instead of spinning.
pub(super) fn millis(timeout: Option<Duration>) -> u32 {
    let Some(timeout) = timeout else {
        return INFINITE;
    };
    let whole = timeout.as_millis();
    let rounded = if Duration::from_millis(u64::try_from(whole).unwrap_or(u64::MAX)) < timeout {
        whole.saturating_add(1)
    } else {
        whole
    };
    u32::try_from(rounded)
        .unwrap_or(INFINITE - 1)
        .min(INFINITE - 1)
}
