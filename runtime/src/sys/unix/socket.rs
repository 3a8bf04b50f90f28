//! Local sockets: a [`Listener`] bound where only this user (or, for an abstract name, only a
//! peer that later proves a token) can reach it, and the [`Stream`] of one connection.
//!
//! Without a socket directory, Linux binds in its abstract namespace: no file exists, so
//! nothing is left behind even after SIGKILL. Otherwise the socket file lives in a fresh
//! directory with mode 0700 named after its owner, removed with the listener — or, after a
//! SIGKILL, by the next bind in the same place ([`private_dir`](super::private_dir)). An
//! address that starts with `@` is an abstract name.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::poll::{BROKEN, PEER_SHUT_WRITE, Source, poll_fds, pollfd};
#[cfg(target_os = "linux")]
use super::private_dir::PREFIX;
use super::private_dir::PrivateDir;

/// The first character of an address in Linux's abstract socket namespace.
#[cfg(target_os = "linux")]
const ABSTRACT_MARK: char = '@';

/// A listening local socket that accepts without blocking.
#[derive(Debug)]
pub(crate) struct Listener {
    inner: UnixListener,
    address: PathBuf,
    /// The directory holding the socket file, when the address is no abstract name.
    _dir: Option<PrivateDir>,
}

impl Listener {
    /// Binds a listener told apart from others by `unique` (hex digits): in a private
    /// directory `skp-<pid>-<start>-<unique>` inside `socket_dir` when one is given, else
    /// under the abstract name `skp-<unique>` where the OS has one (Linux), else in a private
    /// directory in the temp directory. Binding in a directory first sweeps it of the private
    /// directories of dead processes.
    pub(crate) fn bind(socket_dir: Option<&Path>, unique: &str) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        if socket_dir.is_none() {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("{PREFIX}{unique}");
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            let inner = UnixListener::bind_addr(&address)?;
            inner.set_nonblocking(true)?;
            let address = PathBuf::from(format!("{ABSTRACT_MARK}{name}"));
            return Ok(Self {
                inner,
                address,
                _dir: None,
            });
        }
        let dir = PrivateDir::create(socket_dir, unique)?;
        let address = dir.socket_path();
        let inner = UnixListener::bind(&address)?;
        inner.set_nonblocking(true)?;
        Ok(Self {
            inner,
            address,
            _dir: Some(dir),
        })
    }

    /// The address a peer passes to [`Stream::connect`].
    pub(crate) fn address(&self) -> &Path {
        &self.address
    }

    /// Takes one waiting connection, in non-blocking mode; `None` when none waits.
    pub(crate) fn accept(&self) -> io::Result<Option<Stream>> {
        loop {
            match self.inner.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true)?;
                    return Ok(Some(Stream(stream)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<'a> From<&'a Listener> for Source<'a> {
    fn from(listener: &'a Listener) -> Self {
        Source(listener.inner.as_fd())
    }
}

/// One end of a local-socket connection.
#[derive(Debug)]
pub(crate) struct Stream(UnixStream);

impl Stream {
    /// Connects to `address`: an abstract name when it starts with `@` (Linux), a socket file
    /// otherwise.
    pub(crate) fn connect(address: &Path) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        if let Some(name) = abstract_name(address) {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            return UnixStream::connect_addr(&address).map(Self);
        }
        UnixStream::connect(address).map(Self)
    }

    /// Two connected streams, for a wake-up channel inside one process (the share's
    /// coordinator, once it moves onto `sys`) and for tests.
    #[allow(dead_code)]
    pub(crate) fn pair() -> io::Result<(Self, Self)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Self(a), Self(b)))
    }

    /// The pid of the process at the other end, as the kernel recorded it when the connection
    /// was made; never what the peer says about itself.
    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        peer_pid(self.0.as_raw_fd())
    }

    /// Switches between blocking and non-blocking reads and writes.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.0.set_nonblocking(nonblocking)
    }

    /// Bounds each blocking read by `timeout` (`None`: no bound).
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }

    /// A second handle on the same connection.
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(Self)
    }

    /// Sends `head` then `tail` in one vectored call that never blocks (and never raises
    /// SIGPIPE where the OS allows asking); returns how many bytes went out.
    pub(crate) fn send_nonblocking(&self, head: &[u8], tail: &[u8]) -> io::Result<usize> {
        send_nonblocking(self.0.as_raw_fd(), head, tail)
    }

    /// Writes what the socket takes of `head` then `tail`, waiting for room no later than
    /// `deadline`: the bytes that went out, or `WouldBlock` when none did in time. (The one
    /// deadline write both platforms offer; a named pipe cannot wait for room apart from a
    /// write.)
    pub(crate) fn send_before(
        &self,
        head: &[u8],
        tail: &[u8],
        deadline: Instant,
    ) -> io::Result<usize> {
        loop {
            match self.send_nonblocking(head, tail) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    self.wait_writable(Some(left))?;
                }
                other => return other,
            }
        }
    }

    /// Waits until the socket has room to write, for at most `timeout` (`None`: no limit).
    /// Returns early, without error, when the time runs out; the next write tells.
    pub(crate) fn wait_writable(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut fds = [pollfd(self.0.as_raw_fd(), libc::POLLOUT)];
        poll_fds(&mut fds, timeout).map(drop)
    }

    /// Whether the peer shut its writing side or the connection broke, checked without
    /// waiting. A check that fails counts as hung up.
    pub(crate) fn peer_closed(&self) -> bool {
        let mut fds = [pollfd(self.0.as_raw_fd(), PEER_SHUT_WRITE)];
        match poll_fds(&mut fds, Some(Duration::ZERO)) {
            Ok(_) => fds[0].revents & (BROKEN | PEER_SHUT_WRITE) != 0,
            Err(_) => true,
        }
    }

    /// Blocks until the connection is gone both ways or broke (`true`), or cannot be watched
    /// (`false`). Data and a peer that only shut its writing side do not end the wait.
    pub(crate) fn wait_hangup(&self) -> bool {
        // No events asked for: poll then reports only POLLHUP, POLLERR and POLLNVAL.
        let mut fds = [pollfd(self.0.as_raw_fd(), 0)];
        matches!(poll_fds(&mut fds, None), Ok(n) if n > 0 && fds[0].revents & BROKEN != 0)
    }

    /// Shuts the writing side: the peer reads the end of the stream, and can still answer.
    /// (Windows refuses with `ErrorKind::Unsupported`: a named pipe has no half-close, so
    /// callers also say the end in a message.)
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }

    /// Ends the connection both ways; a reader blocked on it wakes with the end of stream.
    pub(crate) fn shutdown_both(&self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Both)
    }
}

impl<'a> From<&'a Stream> for Source<'a> {
    fn from(stream: &'a Stream) -> Self {
        Source(stream.0.as_fd())
    }
}

/// For [`shm`](super::shm), the other part of `sys` that makes socket calls of its own
/// (`sendmsg`/`recvmsg` with a descriptor, and its polls).
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.0).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&self.0).read_vectored(bufs)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn abstract_name(address: &Path) -> Option<&[u8]> {
    let text = address.to_str()?;
    text.strip_prefix(ABSTRACT_MARK).map(str::as_bytes)
}

/// `SO_PEERCRED`: the credentials the kernel took from the peer at `connect`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer_pid(fd: RawFd) -> io::Result<u32> {
    // SAFETY: an all-zero ucred is a valid value; getsockopt only writes into it.
    let mut credentials: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `credentials` and `len` are valid and exclusively borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut credentials).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(credentials.pid).map_err(|_| io::Error::other("the kernel gave no peer pid"))
}

/// `LOCAL_PEERPID`: the pid the kernel recorded for the peer at `connect`.
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn peer_pid(fd: RawFd) -> io::Result<u32> {
    let mut pid: libc::pid_t = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::pid_t>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `pid` and `len` are valid and exclusively borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            std::ptr::from_mut(&mut pid).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(pid).map_err(|_| io::Error::other("the kernel gave no peer pid"))
}

/// Other Unixes give only the peer's user (`getpeereid`), not its pid.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
)))]
fn peer_pid(_fd: RawFd) -> io::Result<u32> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// One `sendmsg` of `head` then `tail` with `MSG_DONTWAIT`.
fn send_nonblocking(fd: RawFd, head: &[u8], tail: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: tail.as_ptr() as *mut libc::c_void,
            iov_len: tail.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid; the fields set below point into live buffers.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iov.as_mut_ptr();
    message.msg_iovlen = iov.len() as _;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: `message` describes two valid buffers that outlive the call; sendmsg only reads
    // them.
    let sent = unsafe { libc::sendmsg(fd, &message, flags) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_pid_comes_from_the_kernel() {
        let (a, b) = Stream::pair().unwrap();
        assert_eq!(a.peer_pid().unwrap(), std::process::id());
        assert_eq!(b.peer_pid().unwrap(), std::process::id());
    }

    #[test]
    fn a_socket_directory_is_private_and_removed_with_the_listener() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("skp-sys-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let listener = Listener::bind(Some(&base), "7e57").unwrap();
        let dir = listener.address().parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let client = Stream::connect(listener.address()).unwrap();
        let accepted = listener.accept().unwrap().expect("a waiting connection");
        assert_eq!(accepted.peer_pid().unwrap(), std::process::id());
        assert!(listener.accept().unwrap().is_none());
        drop((client, accepted, listener));
        assert!(!dir.exists());
        std::fs::remove_dir(&base).unwrap();
    }

    #[test]
    fn a_half_close_is_seen_by_peer_closed_but_not_by_wait_hangup() {
        let (a, b) = Stream::pair().unwrap();
        assert!(!a.peer_closed());
        b.shutdown_write().unwrap();
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert!(a.peer_closed());
        }
        drop(b);
        assert!(a.peer_closed());
        assert!(a.wait_hangup());
    }

    #[test]
    fn a_nonblocking_send_takes_what_fits_and_then_would_block() {
        let (a, _b) = Stream::pair().unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0;
        let error = loop {
            match a.send_nonblocking(b"head", &chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
            assert!(total < 1 << 30, "the socket never filled");
        };
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(total > 0);
        a.wait_writable(Some(Duration::from_millis(1))).unwrap();
    }
}
