//! One connected end of a named pipe, made to behave like a socket: a reader thread keeps an
//! overlapped `ReadFile` in flight and moves what arrives into a bounded inbox, so the end can
//! say without reading whether bytes or the end of the stream wait (`readiness`), wake any
//! waiter registered on it, and serve reads with a timeout or without blocking. Writes run on
//! the caller's thread as overlapped `WriteFile`s with a deadline (`CancelIoEx` when it
//! passes), so a write that returned has reached the pipe: a process that exits right after
//! loses nothing it wrote.
//!
//! The handle is used only by operations started under the state lock (counted in
//! `in_flight`), so after a shutdown nothing new starts and the handle closes — the peer then
//! reads the end of the stream — as soon as the last one ended, without a race against a new
//! one.

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_IO_INCOMPLETE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED, GetLastError,
    HANDLE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::PeekNamedPipe;
use windows_sys::Win32::System::Threading::{INFINITE, SetEvent, WaitForSingleObject};

use super::overlapped::{self, Event, PortOp, check_start, finish};

/// What the reader thread takes per `ReadFile`.
const CHUNK: usize = 64 * 1024;
/// The inbox's bound: past it the reader thread stops reading and the pipe's own buffer fills,
/// so a peer that writes faster than this end reads is held up, as by a full socket.
const INBOX_LIMIT: usize = 256 * 1024;
/// How long a shut-down end lets a write still in flight finish before it cancels it (the
/// peer does not read) and closes.
const LINGER: Duration = Duration::from_secs(2);
/// The most a write with a deadline copies and leaves in flight: the emulated send buffer.
const SEND_BUFFER: usize = 256 * 1024;
/// Every wait for a hang-up also asks the pipe at this interval, for when a full inbox keeps
/// the reader thread from seeing the end.
const HANGUP_CHECK: Duration = Duration::from_millis(100);

/// How the reader thread's reading ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The peer closed its end: the end of the stream.
    Eof,
    /// The pipe failed otherwise.
    Failed(io::ErrorKind),
}

#[derive(Debug)]
struct State {
    /// The pipe; `None` once shut down and every operation on it ended.
    handle: Option<OwnedHandle>,
    /// Operations started on the handle and not yet ended.
    in_flight: usize,
    /// Shut down both ways (or every `Stream` of this end dropped): nothing new starts.
    shut: bool,
    inbox: Inbox,
    end: Option<End>,
    nonblocking: bool,
    read_timeout: Option<Duration>,
    /// Events of threads waiting in `wait_readable` on this end (raw handle values).
    waiters: Vec<usize>,
    /// `Stream` values of this end alive; the last one dropped shuts it down.
    users: usize,
    /// The `OVERLAPPED` of the reader thread's read in flight (its address), so a shutdown
    /// cancels that read alone and lets a write in flight finish.
    reading: Option<usize>,
    /// The reader thread has ended.
    reader_done: bool,
}

/// The shared part of a pipe end: its state, and the two conditions threads wait for.
#[derive(Debug)]
pub(super) struct PipeEnd {
    /// The write in flight, if any (declared first: dropped, and so ended, before the handle).
    writes: Mutex<WriteSlot>,
    /// The server's end (made by a listener) or the client's.
    server: bool,
    state: Mutex<State>,
    /// Bytes, the end of the stream or a shutdown: for readers.
    data: Condvar,
    /// Room in the inbox or a shutdown: for the reader thread.
    room: Condvar,
}

impl PipeEnd {
    /// Wraps a connected pipe handle (opened for overlapped I/O) and starts its reader thread.
    pub(super) fn start(handle: OwnedHandle, server: bool) -> io::Result<Arc<Self>> {
        // A write left in flight by a caller's thread must survive that thread's end.
        overlapped::outlive_threads(handle.as_raw_handle())?;
        let end = Arc::new(Self {
            writes: Mutex::new(WriteSlot::new()?),
            server,
            state: Mutex::new(State {
                handle: Some(handle),
                in_flight: 0,
                shut: false,
                inbox: Inbox::default(),
                end: None,
                nonblocking: false,
                read_timeout: None,
                waiters: Vec::new(),
                users: 1,
                reading: None,
                reader_done: false,
            }),
            data: Condvar::new(),
            room: Condvar::new(),
        });
        let reader = Arc::clone(&end);
        std::thread::Builder::new()
            .name("skprocess-pipe-reader".into())
            .stack_size(128 * 1024)
            .spawn(move || reader.read_loop())?;
        Ok(end)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader thread: reads into the inbox until the end of the stream, a failure or a
    /// shutdown.
    fn read_loop(&self) {
        self.read_until_end();
        let shut = {
            let mut state = self.lock();
            state.reader_done = true;
            state.shut
        };
        if shut {
            self.linger();
        }
    }

    fn read_until_end(&self) {
        let Ok(event) = Event::new(true) else {
            return self.ended(End::Failed(io::ErrorKind::OutOfMemory));
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            if !self.wait_for_room() {
                return;
            }
            let mut ov = overlapped::overlapped(event.raw());
            let len = buf.len() as u32;
            let ptr = buf.as_mut_ptr();
            let read = std::ptr::from_ref(&ov) as usize;
            let started = self.begin(Some(read), |handle| {
                // SAFETY: `buf` and `ov` outlive the operation: `finish` waits for its end.
                unsafe { ReadFile(handle, ptr, len, std::ptr::null_mut(), &mut ov) }
            });
            let result = started.and_then(|handle| {
                let result = finish(handle, &mut ov, None);
                self.end_io(true);
                result
            });
            match result {
                // A zero-length write of the peer's: nothing to record.
                Ok((0, _)) => {}
                Ok((n, _)) => self.arrived(&buf[..n.min(buf.len())]),
                Err(e) => return self.ended(classify(&e)),
            }
        }
    }

    /// After a shutdown: lets a write still in flight finish for [`LINGER`], then cancels
    /// it, so the handle closes and the peer reads the end of the stream.
    fn linger(&self) {
        let deadline = Instant::now().checked_add(LINGER);
        loop {
            if let Ok(mut slot) = self.writes.try_lock() {
                let settled = match deadline {
                    Some(deadline) => slot.settle(self, Some(deadline)),
                    None => slot.settle(self, None),
                };
                if matches!(&settled, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                    self.cancel_all();
                    let _ = slot.settle(self, None);
                }
                return;
            }
            // A blocking writer holds the slot: it ends its own write, cancelled if need be.
            if deadline.is_none_or(|d| Instant::now() >= d) {
                self.cancel_all();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn cancel_all(&self) {
        let state = self.lock();
        if let Some(handle) = &state.handle {
            // SAFETY: the handle is open; a null OVERLAPPED cancels all of its operations.
            unsafe { CancelIoEx(handle.as_raw_handle(), std::ptr::null::<OVERLAPPED>()) };
        }
    }

    /// Waits until the inbox has room; false once shut down.
    fn wait_for_room(&self) -> bool {
        let mut state = self.lock();
        while state.inbox.len() >= INBOX_LIMIT && !state.shut {
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        !state.shut
    }

    fn arrived(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.inbox.push(bytes);
        self.notify(&state);
    }

    fn ended(&self, end: End) {
        let mut state = self.lock();
        state.end.get_or_insert(end);
        self.notify(&state);
    }

    /// Wakes readers and every registered waiter.
    fn notify(&self, state: &State) {
        self.data.notify_all();
        for &waiter in &state.waiters {
            // SAFETY: a registered event stays open until its waiter unregisters it.
            unsafe { SetEvent(waiter as HANDLE) };
        }
    }

    /// Starts an operation on the handle under the lock (`start` gets the raw handle); the
    /// caller must call [`end_io`](Self::end_io) once it ended, if it started.
    /// `read` is the reader thread's `OVERLAPPED`, recorded for a shutdown to cancel.
    fn begin(&self, read: Option<usize>, start: impl FnOnce(HANDLE) -> i32) -> io::Result<HANDLE> {
        let mut state = self.lock();
        let handle = match (&state.handle, state.shut) {
            (Some(handle), false) => handle.as_raw_handle(),
            _ => return Err(io::ErrorKind::BrokenPipe.into()),
        };
        check_start(start(handle))?;
        state.in_flight += 1;
        if read.is_some() {
            state.reading = read;
        }
        Ok(handle)
    }

    /// An operation ended (`read`: the reader thread's): the last one after a shutdown closes
    /// the handle.
    fn end_io(&self, read: bool) {
        let mut state = self.lock();
        if read {
            state.reading = None;
        }
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.shut && state.in_flight == 0 {
            state.handle = None;
        }
    }

    /// Reads what the inbox holds, waiting as the end's mode and timeout say.
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.lock();
        let deadline = state
            .read_timeout
            .and_then(|t| Instant::now().checked_add(t));
        loop {
            if !state.inbox.is_empty() || buf.is_empty() {
                let was_full = state.inbox.len() >= INBOX_LIMIT;
                let n = state.inbox.take(buf);
                if was_full && state.inbox.len() < INBOX_LIMIT {
                    self.room.notify_one();
                }
                return Ok(n);
            }
            if state.shut {
                return Ok(0);
            }
            match state.end {
                Some(End::Eof) => return Ok(0),
                Some(End::Failed(kind)) => return Err(kind.into()),
                None => {}
            }
            if state.nonblocking {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            state = match deadline {
                None => self
                    .data
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    self.data
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Writes `bytes` and waits until the pipe took all of it (or the end is shut down).
    pub(super) fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let mut slot = self.lock_writes();
        slot.settle(self, None)?;
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let ov = slot.prepare();
        let mut at_once = false;
        let handle = self.begin(None, |handle| {
            // SAFETY: `bytes` outlives the operation: it is waited for below, to its end.
            let started =
                unsafe { WriteFile(handle, bytes.as_ptr(), len, std::ptr::null_mut(), ov) };
            at_once = started != 0;
            started
        })?;
        slot.started(handle, at_once);
        slot.settle(self, None)
    }

    /// Writes what fits of `head` then `tail` (at most [`SEND_BUFFER`] bytes, copied), after
    /// the write still in flight if it ends by `deadline`: the bytes handed to the pipe, all
    /// of them counted as written even when the pipe has not taken them yet, or `WouldBlock`
    /// when the earlier write was still in flight at the deadline.
    pub(super) fn write_before(
        &self,
        head: &[u8],
        tail: &[u8],
        deadline: Instant,
    ) -> io::Result<usize> {
        let mut slot = self.lock_writes();
        slot.settle(self, Some(deadline))?;
        let from_head = head.len().min(SEND_BUFFER);
        let from_tail = tail.len().min(SEND_BUFFER - from_head);
        if from_head + from_tail == 0 {
            return Ok(0);
        }
        slot.buf.clear();
        slot.buf.extend_from_slice(&head[..from_head]);
        slot.buf.extend_from_slice(&tail[..from_tail]);
        let (ptr, len) = (slot.buf.as_ptr(), slot.buf.len() as u32);
        let ov = slot.prepare();
        let mut at_once = false;
        let handle = self.begin(None, |handle| {
            // SAFETY: the slot owns the buffer and the OVERLAPPED until the write ends.
            let started = unsafe { WriteFile(handle, ptr, len, std::ptr::null_mut(), ov) };
            at_once = started != 0;
            started
        })?;
        slot.started(handle, at_once);
        // Done by the deadline or not, the bytes are the pipe's now.
        match slot.settle(self, Some(deadline)) {
            Ok(_) => Ok(len as usize),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(len as usize),
            Err(e) => Err(e),
        }
    }

    fn lock_writes(&self) -> MutexGuard<'_, WriteSlot> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether bytes or the end wait, and whether the peer hung up, without waiting.
    pub(super) fn readiness(&self) -> (bool, bool) {
        let state = self.lock();
        let hung_up = state.shut || state.end.is_some();
        (hung_up || !state.inbox.is_empty(), hung_up)
    }

    /// Registers (or, with `add` false, removes) a waiter's event.
    pub(super) fn register(&self, event: HANDLE, add: bool) {
        let mut state = self.lock();
        if add {
            state.waiters.push(event as usize);
        } else if let Some(at) = state.waiters.iter().position(|&w| w == event as usize) {
            state.waiters.swap_remove(at);
        }
    }

    /// Whether the peer closed or the pipe broke, asking the pipe itself when the reader
    /// thread has not seen it yet.
    pub(super) fn peer_closed(&self) -> bool {
        let state = self.lock();
        if state.shut || state.end.is_some() {
            return true;
        }
        match &state.handle {
            Some(handle) => !peek_ok(handle.as_raw_handle()),
            None => true,
        }
    }

    /// Blocks until the peer hung up (`true`) or this end was shut down (`true`: it is gone
    /// both ways too).
    pub(super) fn wait_hangup(&self) -> bool {
        let mut state = self.lock();
        loop {
            if state.shut || state.end.is_some() {
                return true;
            }
            if let Some(handle) = &state.handle
                && !peek_ok(handle.as_raw_handle())
            {
                return true;
            }
            state = self
                .data
                .wait_timeout(state, HANGUP_CHECK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Ends this end both ways: readers wake with the end of the stream, nothing new starts,
    /// the read in flight is cancelled, and the handle closes — so the peer reads the end of
    /// the stream — once a write still in flight finished or [`LINGER`] passed.
    pub(super) fn shutdown(&self) {
        let mut state = self.lock();
        if state.shut {
            return;
        }
        state.shut = true;
        if let (Some(handle), Some(read)) = (&state.handle, state.reading) {
            // SAFETY: the handle is open and `read` is the reader's OVERLAPPED, in flight.
            unsafe { CancelIoEx(handle.as_raw_handle(), read as *const OVERLAPPED) };
        }
        if state.in_flight == 0 {
            state.handle = None;
        }
        self.room.notify_all();
        self.notify(&state);
        let reader_done = state.reader_done;
        drop(state);
        // The reader thread lingers on its way out; when it is gone already, this does.
        if reader_done {
            self.linger();
        }
    }

    /// One more `Stream` of this end.
    pub(super) fn add_user(&self) {
        self.lock().users += 1;
    }

    /// A `Stream` of this end went; the last one shuts it down.
    pub(super) fn remove_user(&self) {
        let last = {
            let mut state = self.lock();
            state.users = state.users.saturating_sub(1);
            state.users == 0
        };
        if last {
            self.shutdown();
        }
    }

    pub(super) fn set_nonblocking(&self, nonblocking: bool) {
        self.lock().nonblocking = nonblocking;
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.lock().read_timeout = timeout;
    }

    /// The raw handle and whether this is the server's end, for a query that needs it.
    pub(super) fn with_handle<R>(
        &self,
        query: impl FnOnce(HANDLE, bool) -> io::Result<R>,
    ) -> io::Result<R> {
        let state = self.lock();
        match &state.handle {
            Some(handle) if !state.shut => query(handle.as_raw_handle(), self.server),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The end's one write at a time: its event, its `OVERLAPPED` (boxed, so it stays in place
/// while the write is in flight past the call that started it) and the copied bytes of a
/// write with a deadline.
struct WriteSlot {
    event: Event,
    ov: Box<PortOp>,
    buf: Vec<u8>,
    /// The handle a write is in flight on (a raw value), until it is seen to end.
    in_flight: Option<usize>,
}

impl std::fmt::Debug for WriteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteSlot")
            .field("in_flight", &self.in_flight.is_some())
            .finish()
    }
}

// SAFETY: the operation's event is the slot's own; the slot is only used under its mutex.
unsafe impl Send for WriteSlot {}

impl WriteSlot {
    fn new() -> io::Result<Self> {
        let event = Event::new(true)?;
        Ok(Self {
            ov: PortOp::boxed(event.raw()),
            event,
            buf: Vec::new(),
            in_flight: None,
        })
    }

    /// A fresh `OVERLAPPED` for the next write.
    fn prepare(&mut self) -> *mut OVERLAPPED {
        self.event.reset();
        self.ov.reset()
    }

    /// Records a write just started: `started` is `WriteFile`'s result. One that finished in
    /// the call posts no packet, so its event is set here.
    fn started(&mut self, handle: HANDLE, started: bool) {
        if started {
            self.event.set();
        }
        self.in_flight = Some(handle as usize);
    }

    /// Waits for the write in flight until `deadline` (`None`: to its end) without ever
    /// cancelling it: the bytes it took, 0 when none was in flight, or `WouldBlock` when it
    /// is still in flight at the deadline.
    fn settle(&mut self, end: &PipeEnd, deadline: Option<Instant>) -> io::Result<usize> {
        let Some(handle) = self.in_flight else {
            return Ok(0);
        };
        let mut taken = 0u32;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // SAFETY: the event is live.
            if unsafe { WaitForSingleObject(self.event.raw(), overlapped::millis(left)) }
                != WAIT_OBJECT_0
            {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // SAFETY: the write on `handle` used this OVERLAPPED, which stayed in place; the
            // handle stays open while the write is counted in flight.
            let ok = unsafe { GetOverlappedResult(handle as HANDLE, &self.ov.ov, &mut taken, 0) };
            // SAFETY: reads the calling thread's last error.
            if ok == 0 && unsafe { GetLastError() } == ERROR_IO_INCOMPLETE {
                // Not this write's end (none is expected): wait on.
                self.event.reset();
                continue;
            }
            let result = if ok != 0 {
                Ok(taken as usize)
            } else {
                Err(io::ErrorKind::BrokenPipe.into())
            };
            self.in_flight = None;
            end.end_io(false);
            return result;
        }
    }
}

impl Drop for WriteSlot {
    fn drop(&mut self) {
        if let Some(handle) = self.in_flight.take() {
            // SAFETY: ends the write (its handle is still open: the slot drops before the
            // state that owns it), and waits until the port's thread set its event — the last
            // use of the operation — before its OVERLAPPED and buffer are freed.
            unsafe {
                CancelIoEx(handle as HANDLE, &self.ov.ov);
                WaitForSingleObject(self.event.raw(), INFINITE);
            }
        }
    }
}

/// Bytes read from the pipe and not yet taken: one buffer and a read position, so both sides
/// copy whole slices.
#[derive(Debug, Default)]
struct Inbox {
    bytes: Vec<u8>,
    start: usize,
}

impl Inbox {
    fn len(&self) -> usize {
        self.bytes.len().saturating_sub(self.start)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, more: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    /// Moves as much as fits into `buf`; returns how much.
    fn take(&mut self, buf: &mut [u8]) -> usize {
        let waiting = self.bytes.get(self.start..).unwrap_or_default();
        let n = buf.len().min(waiting.len());
        buf[..n].copy_from_slice(&waiting[..n]);
        self.start += n;
        if self.start >= self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
        n
    }
}

/// Whether the pipe still answers a peek (a closed peer makes it fail).
fn peek_ok(handle: HANDLE) -> bool {
    let mut available = 0u32;
    // SAFETY: no buffer is passed; the call only writes the count.
    let ok = unsafe {
        PeekNamedPipe(
            handle,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            &mut available,
            std::ptr::null_mut(),
        )
    };
    ok != 0
}

/// The end of the stream for the errors a closed peer gives, a failure otherwise.
fn classify(error: &io::Error) -> End {
    let raw = error.raw_os_error().and_then(|e| u32::try_from(e).ok());
    match raw {
        Some(ERROR_BROKEN_PIPE | ERROR_NO_DATA | ERROR_PIPE_NOT_CONNECTED) => End::Eof,
        _ if matches!(
            error.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::BrokenPipe
        ) =>
        {
            End::Eof
        }
        _ => End::Failed(error.kind()),
    }
}
