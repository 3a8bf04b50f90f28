//! Local sockets over named pipes: a [`Listener`] that owns the name `\\.\pipe\skp-<unique>`
//! (created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so nobody else held it first, under a DACL
//! for the current user alone, remote clients rejected) and keeps one instance waiting for a
//! client, and the [`Stream`] of one connection ([`PipeEnd`](super::pipe_end)). Pipe names
//! live in no directory, so `socket_dir` has nothing to hold and nothing is ever left behind.

use std::io::{self, IoSlice, Read, Write};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, ERROR_OPERATION_ABORTED, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, GENERIC_READ, GENERIC_WRITE, GetLastError, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
    PIPE_ACCESS_DUPLEX, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, GetNamedPipeClientProcessId, GetNamedPipeServerProcessId,
    PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES,
    PIPE_WAIT, WaitNamedPipeW,
};

use super::overlapped::{Event, overlapped};
use super::pipe_end::PipeEnd;
use super::security::current_user_only;

/// The namespace of local named pipes.
const PIPE_PREFIX: &str = r"\\.\pipe\";
/// Each direction's buffer in the pipe itself (the inbox of the reading end adds to it).
const PIPE_BUFFER: u32 = 64 * 1024;
/// How long a client keeps trying while every instance of the name is busy.
const BUSY_PATIENCE: Duration = Duration::from_secs(10);

/// How many instances wait for clients at once: the backlog of connections made before the
/// owner accepts (a client that finds them all taken waits, see [`Stream::connect`]).
const BACKLOG: usize = 8;

/// One instance waiting for a client, and the `OVERLAPPED` of its `ConnectNamedPipe`, which
/// stays in place (boxed) while the connect is in flight.
struct Waiting {
    pipe: Option<OwnedHandle>,
    ov: Box<OVERLAPPED>,
    /// Signalled when this instance got a client (manual reset).
    connected: Event,
    /// The connect is in flight (not yet known done).
    pending: bool,
}

// SAFETY: the raw pointers in OVERLAPPED are the slot's own event and nothing else; the
// structure is only touched under the listener's lock.
unsafe impl Send for Waiting {}

impl Waiting {
    fn new() -> io::Result<Self> {
        let connected = Event::new(true)?;
        Ok(Self {
            pipe: None,
            ov: Box::new(overlapped(connected.raw())),
            connected,
            pending: false,
        })
    }

    /// Takes the instance if a client connected to it; `Ok(None)` while none has, and
    /// `Err` when the connect failed (the client left): the slot is then empty.
    fn take_connected(&mut self) -> io::Result<Option<OwnedHandle>> {
        let Some(pipe) = self.pipe.as_ref().map(AsRawHandle::as_raw_handle) else {
            return Ok(None);
        };
        if self.pending {
            let mut ignored = 0u32;
            // SAFETY: `ov` is the in-flight connect's, in place; no waiting (bWait false).
            if unsafe { GetOverlappedResult(pipe, &*self.ov, &mut ignored, 0) } == 0 {
                // SAFETY: reads the calling thread's last error.
                let error = unsafe { GetLastError() };
                if error == ERROR_IO_INCOMPLETE {
                    return Ok(None);
                }
                self.pending = false;
                if error == ERROR_OPERATION_ABORTED {
                    // Windows cancels a thread's I/O when the thread exits: the thread that
                    // armed this instance (the one that bound the listener, or accepted last)
                    // has ended. The instance still listens and may hold a client by now:
                    // connect again, from this thread.
                    self.connect()?;
                    return Ok(if self.pending { None } else { self.pipe.take() });
                }
                self.pipe = None;
                return Err(io::Error::from_raw_os_error(error as i32));
            }
            self.pending = false;
        }
        Ok(self.pipe.take())
    }

    /// Puts a fresh instance of `name` in the slot and starts its connect; `first` asks that
    /// it be the name's first instance.
    fn arm(&mut self, name: &[u16], first: bool) -> io::Result<()> {
        let attributes = current_user_only()?;
        let first = if first {
            FILE_FLAG_FIRST_PIPE_INSTANCE
        } else {
            0
        };
        // SAFETY: `name` is NUL-terminated and `attributes` points to a live descriptor.
        let raw = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | first,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                PIPE_UNLIMITED_INSTANCES,
                PIPE_BUFFER,
                PIPE_BUFFER,
                0,
                &attributes,
            )
        };
        if raw == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh handle owned by nothing else.
        self.pipe = Some(unsafe { OwnedHandle::from_raw_handle(raw) });
        self.connect()
    }

    /// Starts the connect of the instance in the slot (the connect of a thread that ended
    /// again, too); the slot is empty after an error.
    fn connect(&mut self) -> io::Result<()> {
        let Some(pipe) = self.pipe.as_ref().map(AsRawHandle::as_raw_handle) else {
            return Ok(());
        };
        self.connected.reset();
        *self.ov = overlapped(self.connected.raw());
        // SAFETY: `ov` is boxed and stays in place until the connect ends (taken or dropped).
        let ok = unsafe { ConnectNamedPipe(pipe, &mut *self.ov) };
        // SAFETY: reads the calling thread's last error.
        let error = unsafe { GetLastError() };
        match (ok, error) {
            (0, ERROR_IO_PENDING) => self.pending = true,
            // A client came between the create and the connect.
            (0, ERROR_PIPE_CONNECTED) | (1, _) => {
                self.pending = false;
                self.connected.set();
            }
            _ => {
                self.pipe = None;
                return Err(io::Error::from_raw_os_error(error as i32));
            }
        }
        Ok(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let (Some(pipe), true) = (&self.pipe, self.pending) {
            let mut ignored = 0u32;
            // SAFETY: cancels the in-flight connect and waits for its end, so the boxed
            // OVERLAPPED is no longer in use when it is freed.
            unsafe {
                CancelIoEx(pipe.as_raw_handle(), &*self.ov);
                GetOverlappedResult(pipe.as_raw_handle(), &*self.ov, &mut ignored, 1);
            }
        }
    }
}

/// A named-pipe listener that accepts without blocking.
pub(crate) struct Listener {
    name: Vec<u16>,
    address: PathBuf,
    /// The instances waiting for clients; the first was created as the name's first.
    waiting: Mutex<Vec<Waiting>>,
    /// Their events, for the readiness waits (the slots never move or change events).
    events: Vec<usize>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .finish()
    }
}

impl Listener {
    /// Creates the pipe `\\.\pipe\skp-<unique>` and starts waiting for clients. Pipes live in
    /// no directory: `socket_dir` must exist, and holds nothing.
    pub(crate) fn bind(socket_dir: Option<&Path>, unique: &str) -> io::Result<Self> {
        // Nothing goes there, but a directory that is not one is the same mistake as on Unix.
        if let Some(dir) = socket_dir
            && !std::fs::metadata(dir)?.is_dir()
        {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        let address = format!("{PIPE_PREFIX}skp-{unique}");
        let name = wide(&address);
        let mut waiting = Vec::with_capacity(BACKLOG);
        for slot in 0..BACKLOG {
            let mut instance = Waiting::new()?;
            instance.arm(&name, slot == 0)?;
            waiting.push(instance);
        }
        let events = waiting.iter().map(|w| w.connected.raw() as usize).collect();
        Ok(Self {
            name,
            address: PathBuf::from(address),
            waiting: Mutex::new(waiting),
            events,
        })
    }

    /// The address a peer passes to [`Stream::connect`].
    pub(crate) fn address(&self) -> &Path {
        &self.address
    }

    /// Takes a connected client, if one is, and puts a new instance in its place; `None`
    /// when none connected yet. The stream does not block, as an accepted Unix socket of this
    /// layer does: the rendezvous reads hellos from many pending connections on one thread,
    /// and a blocking read of a peer that sent half a hello would hold every other one up.
    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in waiting.iter_mut() {
            // An error: the client left before it was taken; wait for the next one there.
            let taken = slot.take_connected().unwrap_or_default();
            if slot.pipe.is_none() {
                slot.arm(&self.name, false)?;
            }
            if let Some(pipe) = taken {
                let stream = Stream::wrap(pipe, true)?;
                stream.set_nonblocking(true)?;
                return Ok(Some(stream));
            }
        }
        Ok(None)
    }

    /// The events a wait on this listener watches, one per waiting instance.
    pub(super) fn events(&self) -> impl Iterator<Item = HANDLE> + '_ {
        self.events.iter().map(|&event| event as HANDLE)
    }
}

/// One end of a connection.
#[derive(Debug)]
pub(crate) struct Stream(Arc<PipeEnd>);

impl Stream {
    fn wrap(pipe: OwnedHandle, server: bool) -> io::Result<Self> {
        PipeEnd::start(pipe, server).map(Self)
    }

    /// Connects to the pipe named `address`, waiting while every instance is busy.
    pub(crate) fn connect(address: &Path) -> io::Result<Self> {
        let name = wide(&address.to_string_lossy());
        let deadline = Instant::now().checked_add(BUSY_PATIENCE);
        loop {
            // SAFETY: `name` is NUL-terminated; no security attributes, no template.
            let raw = unsafe {
                CreateFileW(
                    name.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    0,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    std::ptr::null_mut(),
                )
            };
            if raw != INVALID_HANDLE_VALUE {
                // SAFETY: a fresh handle owned by nothing else.
                return Self::wrap(unsafe { OwnedHandle::from_raw_handle(raw) }, false);
            }
            let error = io::Error::last_os_error();
            let busy = error.raw_os_error() == Some(ERROR_PIPE_BUSY as i32);
            if !busy || deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(error);
            }
            // SAFETY: `name` is NUL-terminated.
            unsafe { WaitNamedPipeW(name.as_ptr(), 100) };
        }
    }

    /// The pid of the process at the other end, as the pipe recorded it; never what the peer
    /// says about itself.
    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        self.0.with_handle(|handle, server| {
            let mut pid = 0u32;
            // SAFETY: the handle is open while the closure runs; the call writes `pid`.
            let ok = unsafe {
                if server {
                    GetNamedPipeClientProcessId(handle, &mut pid)
                } else {
                    GetNamedPipeServerProcessId(handle, &mut pid)
                }
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(pid)
        })
    }

    /// Switches between blocking and non-blocking reads (writes take a deadline instead).
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.0.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Bounds each blocking read by `timeout` (`None`: no bound); a read that times out fails
    /// with `WouldBlock`, as on Unix. A zero timeout is refused, as on Unix.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        self.0.set_read_timeout(timeout);
        Ok(())
    }

    /// A second handle on the same connection.
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        self.0.add_user();
        Ok(Self(Arc::clone(&self.0)))
    }

    /// Writes what the pipe takes of `head` then `tail` by `deadline`: the bytes that went
    /// out, or `WouldBlock` when none did in time. Bytes that went out may still be on their
    /// way, as in a socket's send buffer; the next write goes after them.
    pub(crate) fn send_before(
        &self,
        head: &[u8],
        tail: &[u8],
        deadline: Instant,
    ) -> io::Result<usize> {
        self.0.write_before(head, tail, deadline)
    }

    /// Whether the peer closed or the pipe broke, checked without waiting. (A named pipe has
    /// no half-close, so this is a full hang-up.)
    pub(crate) fn peer_closed(&self) -> bool {
        self.0.peer_closed()
    }

    /// Blocks until the connection is gone (`true`).
    pub(crate) fn wait_hangup(&self) -> bool {
        self.0.wait_hangup()
    }

    /// Refuses (`ErrorKind::Unsupported`) and leaves the connection as it was: a named pipe
    /// has no half-close, and ending it both ways would cut off the answer a caller that shuts
    /// its writing side still waits for. Such a caller says the end in a message instead.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a named pipe has no half-close",
        ))
    }

    /// Ends the connection both ways; a reader blocked on it wakes with the end of stream, and
    /// the peer reads the end of the stream.
    pub(crate) fn shutdown_both(&self) -> io::Result<()> {
        self.0.shutdown();
        Ok(())
    }

    /// The end, for the readiness waits.
    pub(super) fn end(&self) -> &PipeEnd {
        &self.0
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.remove_user();
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The first non-empty slice: one WriteFile per call, as short writes allow.
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(buf) => self.0.write(buf),
            None => Ok(0),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` as a NUL-terminated UTF-16 string.
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
