//! The private rendezvous point a child connects back to, and the hello that authenticates it.
//!
//! The socket file lives in a fresh directory with mode 0700; both are removed as soon as the
//! rendezvous is dropped (once the child has connected, or the spawn failed). The child must
//! also prove a random token in its first frame. Connections are handled concurrently, each
//! with its own hello deadline, so a foreign connection that stays silent or trickles bytes
//! cannot delay the real child.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::transport::connection::Connection;
use crate::transport::frame::{self, FrameReader};

/// How long one connection may take to send its hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(2);
/// Largest hello accepted; a real one is about 50 bytes.
const MAX_HELLO: usize = 256;
/// Connections waiting for their hello at once; the oldest is dropped beyond this.
const MAX_PENDING: usize = 64;
/// Longest single wait, so that a child's exit or a kill is noticed promptly.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// The first frame on every connection: who the child is and the token it was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The token the peer proves.
    pub token: String,
    /// The process id the peer says it has.
    pub pid: u32,
}

/// Returns `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Connects to a rendezvous address and proves `token`.
pub(crate) fn connect(address: &Path, token: &str, max_frame: u32) -> Result<Connection, Error> {
    let connection = Connection::new(connect_stream(address)?, max_frame)?;
    connection.send(&Hello {
        token: token.to_owned(),
        pid: std::process::id(),
    })?;
    Ok(connection)
}

/// The first character of an address in Linux's abstract socket namespace: such a socket is
/// no file, so nothing is left behind when its process is killed.
#[cfg(target_os = "linux")]
const ABSTRACT_MARK: char = '@';

/// Opens a stream to `address`: an abstract name when it starts with [`ABSTRACT_MARK`] (Linux),
/// a socket file otherwise.
pub(crate) fn connect_stream(address: &Path) -> io::Result<UnixStream> {
    #[cfg(target_os = "linux")]
    if let Some(name) = abstract_name(address) {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        return UnixStream::connect_addr(&address);
    }
    UnixStream::connect(address)
}

#[cfg(target_os = "linux")]
fn abstract_name(address: &Path) -> Option<&[u8]> {
    let text = address.to_str()?;
    text.strip_prefix(ABSTRACT_MARK).map(str::as_bytes)
}

/// Binds a fresh listener: in `socket_dir` when one is given (inside a private directory that
/// goes with the listener), else in the abstract namespace where the OS has one, else in a
/// private directory under the temp directory.
fn bind_listener(
    socket_dir: Option<&Path>,
) -> Result<(UnixListener, PathBuf, Option<PrivateDir>), Error> {
    #[cfg(target_os = "linux")]
    if socket_dir.is_none() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("skp-{}", random_hex(16)?);
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&address)?;
        return Ok((
            listener,
            PathBuf::from(format!("{ABSTRACT_MARK}{name}")),
            None,
        ));
    }
    let dir = PrivateDir::create(socket_dir)?;
    let address = dir.path.join("s");
    let listener = UnixListener::bind(&address)?;
    Ok((listener, address, Some(dir)))
}

/// A private listening socket. A spawn's rendezvous exists only until its child has
/// connected; a [`Service`](super::service::Service) keeps one for as long as it serves.
pub(crate) struct Rendezvous {
    listener: UnixListener,
    address: PathBuf,
    /// Connections accepted but not yet judged; kept across calls so that a service does not
    /// drop a half-sent hello when another connection is proven first.
    pending: Vec<Pending>,
    /// Longest single wait while nothing is pending.
    idle_wait: Duration,
    /// The directory holding the socket file, when it is not an abstract name.
    _dir: Option<PrivateDir>,
}

/// A connection that has not proven the token yet.
struct Pending {
    stream: UnixStream,
    frames: FrameReader,
    deadline: Instant,
}

impl Rendezvous {
    /// Binds a fresh, private rendezvous point in `socket_dir` (default: an abstract name on
    /// Linux, a private directory in the temp directory elsewhere). Anyone may connect to an
    /// abstract name; only a peer that proves the token is ever accepted.
    pub(crate) fn bind(socket_dir: Option<&Path>) -> Result<Self, Error> {
        let (listener, address, dir) = bind_listener(socket_dir)?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            address,
            pending: Vec::new(),
            idle_wait: POLL_SLICE,
            _dir: dir,
        })
    }

    /// Waits up to `idle_wait` at a time while no connection is pending (default: 10 ms, so
    /// that a spawn notices its child's exit promptly). `abandon` is asked after each wait.
    pub(crate) fn with_idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// The address a child passes to [`connect`].
    pub(crate) fn address(&self) -> &Path {
        &self.address
    }

    /// Accepts the first connection that proves `token` before `deadline` (`None`: no limit).
    /// `abandon` is asked between waits whether to give up (the child exited, a kill came).
    pub(crate) fn accept(
        &mut self,
        token: &str,
        max_frame: u32,
        deadline: Option<Instant>,
        mut abandon: impl FnMut() -> Option<Error>,
    ) -> Result<(Connection, Hello), Error> {
        let mut pending = std::mem::take(&mut self.pending);
        let accepted = self.accept_from(&mut pending, token, max_frame, deadline, &mut abandon);
        self.pending = pending;
        accepted
    }

    fn accept_from(
        &self,
        pending: &mut Vec<Pending>,
        token: &str,
        max_frame: u32,
        deadline: Option<Instant>,
        abandon: &mut impl FnMut() -> Option<Error>,
    ) -> Result<(Connection, Hello), Error> {
        loop {
            let now = Instant::now();
            pending.retain(|p| p.deadline > now);
            if let Some(error) = abandon() {
                return Err(error);
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Bootstrap {
                    detail: "no connection proved the token in time".into(),
                });
            }
            let ready = wait_readable(
                &self.listener,
                pending,
                wait_slice(now, deadline, pending, self.idle_wait),
            )?;
            if ready.listener {
                self.accept_waiting(pending)?;
            }
            for index in ready.streams.into_iter().rev() {
                let Pending { stream, frames, .. } = &mut pending[index];
                match read_hello(frames, stream, token) {
                    HelloState::Proven(hello) => {
                        let stream = pending.swap_remove(index).stream;
                        return Ok((Connection::new(stream, max_frame)?, hello));
                    }
                    HelloState::Rejected => drop(pending.swap_remove(index)),
                    HelloState::Incomplete => {}
                }
            }
        }
    }

    /// Takes every connection waiting in the backlog.
    fn accept_waiting(&self, pending: &mut Vec<Pending>) -> Result<(), Error> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true)?;
                    if pending.len() >= MAX_PENDING {
                        pending.remove(0);
                    }
                    let now = Instant::now();
                    pending.push(Pending {
                        stream,
                        frames: hello_reader(),
                        deadline: now.checked_add(HELLO_DEADLINE).unwrap_or(now),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// How long the next wait may last: a slice, cut short by the overall and hello deadlines.
fn wait_slice(
    now: Instant,
    deadline: Option<Instant>,
    pending: &[Pending],
    idle_wait: Duration,
) -> Duration {
    let slice = if pending.is_empty() {
        idle_wait
    } else {
        POLL_SLICE
    };
    let earliest = pending.iter().map(|p| p.deadline).chain(deadline).min();
    earliest.map_or(slice, |d| d.saturating_duration_since(now).min(slice))
}

/// Which of the listener and the pending streams have something to read.
struct Readable {
    listener: bool,
    streams: Vec<usize>,
}

fn wait_readable(
    listener: &UnixListener,
    pending: &[Pending],
    timeout: Duration,
) -> Result<Readable, Error> {
    let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
        .chain(pending.iter().map(|p| p.stream.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if n < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error.into());
        }
    }
    let fired = |fd: &libc::pollfd| fd.revents != 0;
    Ok(Readable {
        listener: fired(&fds[0]),
        streams: (0..pending.len()).filter(|&i| fired(&fds[i + 1])).collect(),
    })
}

/// What reading a connection's hello came to.
#[doc(hidden)]
#[derive(Debug)]
pub enum HelloState {
    /// A whole hello that proves the token.
    Proven(Hello),
    /// Anything else once it is whole (or cannot become a hello): the connection is dropped.
    Rejected,
    /// More bytes are needed.
    Incomplete,
}

/// The reader of one connection's hello: frames up to [`MAX_HELLO`], and nothing read past
/// the hello, since what a client sends right after it (a service's first request) belongs to
/// the connection, not to the rendezvous.
#[doc(hidden)]
pub fn hello_reader() -> FrameReader {
    FrameReader::new(MAX_HELLO as u32).exact()
}

/// Encodes a hello frame, as a client sends it.
#[doc(hidden)]
pub fn hello_frame(token: &str, pid: u32) -> Vec<u8> {
    let hello = Hello {
        token: token.to_owned(),
        pid,
    };
    // A hello of a token longer than `MAX_HELLO` is refused by the rendezvous anyway.
    frame::encode_frame(&hello, u32::MAX).unwrap_or_default()
}

/// Reads what a pending connection has sent (`stream` is non-blocking, or anything else
/// that reads); judges it once a whole frame is in.
#[doc(hidden)]
pub fn read_hello<R: Read>(frames: &mut FrameReader, stream: &mut R, token: &str) -> HelloState {
    match frames.read_frame(stream) {
        Ok(Some(frame)) => judge_hello(frame.bytes(), token),
        Err(e) if e.is_timeout() => HelloState::Incomplete,
        // An end, a frame over the limit, a broken stream.
        Ok(None) | Err(_) => HelloState::Rejected,
    }
}

/// Judges a whole hello frame's body.
fn judge_hello(body: &[u8], token: &str) -> HelloState {
    match frame::decode::<Hello>(body) {
        Ok(hello) if constant_time_eq(&hello.token, token) => HelloState::Proven(hello),
        _ => HelloState::Rejected,
    }
}

/// Compares two strings without an early exit, so timing does not leak the token.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A directory only the current user can enter; removed with everything in it on drop.
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create(base: Option<&Path>) -> Result<Self, Error> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = base.join(format!("skp-{}", random_hex(8)?));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(Self { path })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Best effort: the directory is private and holds nothing but our socket.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::thread;

    const LIMIT: u32 = 1024;

    fn hello_frame(token: &str, pid: u32) -> Vec<u8> {
        let hello = Hello {
            token: token.into(),
            pid,
        };
        frame::encode_frame(&hello, LIMIT).unwrap()
    }

    fn accept_within(mut rendezvous: Rendezvous, limit: Duration) -> Result<Hello, Error> {
        let deadline = Instant::now() + limit;
        rendezvous
            .accept("secret", LIMIT, Some(deadline), || None)
            .map(|(_, hello)| hello)
    }

    #[test]
    fn accepts_only_the_connection_that_proves_the_token() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let mut rogue = connect_stream(&address).unwrap();
            rogue
                .write_all(&hello_frame("guess-guess-guess", 1))
                .unwrap();
            let mut honest = connect_stream(&address).unwrap();
            honest.write_all(&hello_frame("secret", 2)).unwrap();
            (rogue, honest)
        });
        let hello = accept_within(rendezvous, Duration::from_secs(5)).unwrap();
        assert_eq!(hello.pid, 2, "the rogue connection was accepted");
        client.join().unwrap();
    }

    #[test]
    fn a_wrong_token_alone_is_never_accepted() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let mut rogue = connect_stream(&address).unwrap();
            rogue.write_all(&hello_frame("secreT", 1)).unwrap();
            rogue
        });
        let started = Instant::now();
        let result = accept_within(rendezvous, Duration::from_millis(300));
        assert!(matches!(result, Err(Error::Bootstrap { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(client.join());
    }

    #[test]
    fn silent_and_trickling_connections_do_not_delay_the_real_one() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let silent = connect_stream(&address).unwrap();
            let mut trickle = connect_stream(&address).unwrap();
            trickle.write_all(&hello_frame("secret", 3)[..2]).unwrap();
            thread::sleep(Duration::from_millis(50));
            let mut honest = connect_stream(&address).unwrap();
            honest.write_all(&hello_frame("secret", 2)).unwrap();
            (silent, trickle, honest)
        });
        let started = Instant::now();
        let hello = accept_within(rendezvous, Duration::from_secs(10)).unwrap();
        assert_eq!(hello.pid, 2);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        client.join().unwrap();
    }

    fn judge(bytes: &[u8]) -> HelloState {
        read_hello(&mut hello_reader(), &mut &bytes[..], "secret")
    }

    #[test]
    fn a_hello_over_the_size_limit_or_with_trailing_bytes_is_rejected() {
        let mut oversized = ((MAX_HELLO + 1) as u32).to_le_bytes().to_vec();
        oversized.resize(frame::HEADER_LEN + MAX_HELLO + 1, b'a');
        assert!(matches!(judge(&oversized), HelloState::Rejected));
        let mut trailing = hello_frame("secret", 2);
        trailing.push(0);
        trailing[0] += 1;
        assert!(matches!(judge(&trailing), HelloState::Rejected));
        let whole = hello_frame("secret", 2);
        assert!(matches!(judge(&whole), HelloState::Proven(_)));
        // Cut short and then ended: no hello; cut short on a live stream: more to come.
        let partial = &whole[..whole.len() - 1];
        assert!(matches!(judge(partial), HelloState::Rejected));
        let mut frames = hello_reader();
        let mut live = partial.chain(NeverMore);
        assert!(matches!(
            read_hello(&mut frames, &mut live, "secret"),
            HelloState::Incomplete
        ));
    }

    /// A stream that has nothing more for now.
    struct NeverMore;

    impl Read for NeverMore {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    #[test]
    fn abandons_when_asked() {
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let result = rendezvous.accept("secret", LIMIT, None, || {
            Some(Error::Bootstrap {
                detail: "child exited".into(),
            })
        });
        assert!(matches!(result, Err(Error::Bootstrap { detail }) if detail == "child exited"));
    }

    #[test]
    fn socket_directory_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("skp-private-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let rendezvous = Rendezvous::bind(Some(&base)).unwrap();
        let dir = rendezvous.address().parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(rendezvous);
        assert!(!dir.exists());
        std::fs::remove_dir(&base).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn without_a_socket_directory_the_address_is_an_abstract_name_and_no_file() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        assert!(
            address.to_str().unwrap().starts_with(ABSTRACT_MARK),
            "{address:?}"
        );
        assert!(!address.exists());
        assert!(connect_stream(&address).is_ok());
        drop(rendezvous);
        assert!(connect_stream(&address).is_err());
    }
}
