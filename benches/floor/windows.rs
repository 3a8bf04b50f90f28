//! The floors' connection on Windows: a named pipe `\\.\pipe\skp-bench-<pid>-<n>`, both ends
//! opened for plain blocking I/O (no `OVERLAPPED`, no reader thread): every read is one
//! `ReadFile` that blocks in the kernel, every write one `WriteFile`. Each direction buffers
//! 64 KiB in the pipe, as the named pipes of skprocess do.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED, GetLastError, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::PIPE_ACCESS_DUPLEX;
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, PIPE_WAIT, PeekNamedPipe, WaitNamedPipeW,
};

use super::SPIN;

/// Each direction's buffer in the pipe: the same as the named pipes of skprocess.
const PIPE_BUFFER: u32 = 64 * 1024;

/// One end of a floor's connection: a pipe handle, read and written as a file.
pub type Stream = File;

/// A pipe name with one instance always waiting for the next client.
pub struct Listener {
    /// The name, NUL-terminated, for the pipe calls.
    name: Vec<u16>,
    address: OsString,
    /// The instance the next client connects to.
    waiting: RefCell<File>,
}

impl Listener {
    pub fn bind() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let address = OsString::from(format!(r"\\.\pipe\skp-bench-{}-{n}", std::process::id()));
        let name: Vec<u16> = address.encode_wide().chain([0]).collect();
        let waiting = RefCell::new(instance(&name));
        Self {
            name,
            address,
            waiting,
        }
    }

    /// Waits for a client on the waiting instance and returns it connected, after putting a
    /// fresh instance in its place. (An instance is created only once the previous one has its
    /// client: a client that came in between would wait for it, see [`connect_to`].)
    pub fn accept(&self) -> Stream {
        let pipe = self.waiting.borrow().as_raw_handle();
        // SAFETY: `pipe` is a live pipe instance opened without FILE_FLAG_OVERLAPPED: the call
        // blocks until a client connects and takes no OVERLAPPED.
        if unsafe { ConnectNamedPipe(pipe, std::ptr::null_mut()) } == 0 {
            // SAFETY: reads the calling thread's last error.
            let error = unsafe { GetLastError() };
            // A client that connected before the call is connected all the same.
            assert_eq!(error, ERROR_PIPE_CONNECTED, "accept a floor child");
        }
        self.waiting.replace(instance(&self.name))
    }

    /// What a re-execution passes to [`connect_to`].
    pub fn address(&self) -> &OsStr {
        &self.address
    }
}

/// A new instance of the pipe `name` (NUL-terminated), for blocking I/O.
fn instance(name: &[u16]) -> File {
    // SAFETY: `name` is NUL-terminated; no security attributes (the default descriptor).
    let raw = unsafe {
        CreateNamedPipeW(
            name.as_ptr(),
            PIPE_ACCESS_DUPLEX,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            PIPE_UNLIMITED_INSTANCES,
            PIPE_BUFFER,
            PIPE_BUFFER,
            0,
            std::ptr::null(),
        )
    };
    assert_ne!(
        raw,
        INVALID_HANDLE_VALUE,
        "create the floor's pipe: {}",
        io::Error::last_os_error()
    );
    // SAFETY: a fresh handle owned by nothing else.
    unsafe { File::from_raw_handle(raw) }
}

/// Connects to the bench's [`Listener`] at `address`, waiting while its instance is busy.
pub fn connect_to(address: &OsStr) -> io::Result<Stream> {
    let name: Vec<u16> = address.encode_wide().chain([0]).collect();
    loop {
        match OpenOptions::new().read(true).write(true).open(address) {
            Err(error) if error.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                // SAFETY: `name` is NUL-terminated; waits at most 1 s for a free instance.
                unsafe { WaitNamedPipeW(name.as_ptr(), 1000) };
            }
            result => return result,
        }
    }
}

/// Fills `buf`, polling the pipe (`PeekNamedPipe`) for up to [`SPIN`], then blocking for the
/// rest.
pub fn read_spinning(stream: &mut Stream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    let spin_until = Instant::now() + SPIN;
    while got < buf.len() && Instant::now() < spin_until {
        let mut available = 0u32;
        // SAFETY: no buffer is passed: the call only writes the count of bytes waiting.
        let ok = unsafe {
            PeekNamedPipe(
                stream.as_raw_handle(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                &mut available,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            // The peer hung up or the pipe failed: the blocking read below says which.
            break;
        }
        if available == 0 {
            std::hint::spin_loop();
            continue;
        }
        let rest = &mut buf[got..];
        let want = rest.len().min(available as usize);
        match stream.read(&mut rest[..want])? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    stream.read_exact(&mut buf[got..])
}
