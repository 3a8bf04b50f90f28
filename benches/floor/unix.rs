//! The floors' connection on Unix: a `UnixStream` to a listener in the temporary directory.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::SPIN;

/// One end of a floor's connection.
pub type Stream = UnixStream;

/// A listening socket in the temporary directory, removed when dropped.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    pub fn bind() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("skp-bench-{}-{n}.sock", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the floor's socket");
        Self { listener, path }
    }

    pub fn accept(&self) -> UnixStream {
        self.listener.accept().expect("accept a floor child").0
    }

    /// What a re-execution passes to [`connect_to`].
    pub fn address(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to the bench's [`Listener`] at `address`.
pub fn connect_to(address: &OsStr) -> io::Result<Stream> {
    UnixStream::connect(address)
}

/// Fills `buf`, polling without blocking for up to [`SPIN`], then blocking for the rest.
pub fn read_spinning(stream: &mut UnixStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    let spin_until = Instant::now() + SPIN;
    while got < buf.len() && Instant::now() < spin_until {
        let rest = &mut buf[got..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes for the whole call.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => got += n as usize,
            _ => std::hint::spin_loop(),
        }
    }
    stream.read_exact(&mut buf[got..])
}
