//! Overlapped I/O on a handle opened with `FILE_FLAG_OVERLAPPED`: an operation is started on
//! one thread, waited for with a time limit, and cancelled (`CancelIoEx`) when the time runs
//! out, so reads and writes of one pipe end never serialize behind each other the way
//! synchronous I/O on one file object does. Every operation is waited for to the end before
//! its `OVERLAPPED` leaves the stack, cancelled or not.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, ERROR_OPERATION_ABORTED, GetLastError, HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
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

/// An `OVERLAPPED` that completes on `event`.
pub(super) fn overlapped(event: HANDLE) -> OVERLAPPED {
    // SAFETY: an all-zero OVERLAPPED is the documented starting value.
    let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
    ov.hEvent = event;
    ov
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
        if unsafe { WaitForSingleObject(ov.hEvent, millis(Some(left))) } != WAIT_OBJECT_0 {
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
