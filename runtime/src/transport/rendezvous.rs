//! The private rendezvous point a child connects back to, and the hello that authenticates it.
//!
//! The listener is private (an abstract name on Linux, else a 0700 directory removed with the
//! rendezvous). The child must also prove a random token in its first frame, and when the
//! rendezvous waits for one particular child, the peer's pid must be that child's as the
//! kernel recorded it at `connect` — a process that learned the token is dropped, and the
//! wait goes on for the real child. Connections are handled concurrently, each with its own
//! hello deadline, so a foreign connection that stays silent or trickles bytes cannot delay
//! the real child.

use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::{self, Listener, Source, Stream};
use crate::transport::connection::Connection;
use crate::transport::error::TransportError;
use crate::transport::frame::{self, FrameReader};

/// How long one connection may take to send its hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(2);
/// Largest hello accepted; a real one is about 50 bytes.
const MAX_HELLO: usize = 256;
/// Connections waiting for their hello at once; the oldest is dropped beyond this.
const MAX_PENDING: usize = 64;
/// Longest single wait, so that a child's exit or a kill is noticed promptly.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// The first frame on every connection: the token the child was given. Nothing the peer says
/// about itself travels: its pid is the kernel's (as `SO_PEERCRED` or `LOCAL_PEERPID` gives it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The token the peer proves.
    pub token: String,
}

/// The pid of an accepted peer as the kernel gives it; `None` where the OS does not say
/// (Unixes other than Linux and macOS).
pub(crate) type PeerPid = Option<u32>;

/// Returns `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, TransportError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Connects to a rendezvous address and proves `token`.
pub(crate) fn connect(
    address: &Path,
    token: &str,
    max_frame: u32,
) -> Result<Connection, TransportError> {
    let connection = Connection::new(connect_stream(address)?, max_frame)?;
    connection.send(&Hello {
        token: token.to_owned(),
    })?;
    Ok(connection)
}

/// Opens a stream to a rendezvous address.
pub(crate) fn connect_stream(address: &Path) -> io::Result<Stream> {
    Stream::connect(address)
}

/// A private listening socket. A spawn's rendezvous exists only until its child has
/// connected; a server's accept thread
/// ([`endpoint`](super::endpoint)) keeps one for as long as it serves.
pub(crate) struct Rendezvous {
    listener: Listener,
    /// Connections accepted but not yet judged; kept across calls so that a service does not
    /// drop a half-sent hello when another connection is proven first.
    pending: Vec<Pending>,
    /// Longest single wait while nothing is pending.
    idle_wait: Duration,
}

/// A connection that has not proven the token yet.
struct Pending {
    stream: Stream,
    /// The peer's pid as the kernel gives it; `None` where the OS does not say.
    pid: Option<u32>,
    frames: FrameReader,
    deadline: Instant,
}

/// Whom an accept waits for.
#[derive(Clone, Copy)]
enum Peer {
    /// Any process that proves the token.
    Any,
    /// Only the process with this pid (a child just spawned).
    Process(u32),
}

impl Rendezvous {
    /// Binds a fresh, private rendezvous point in `socket_dir` (default: an abstract name on
    /// Linux, a private directory in the temp directory elsewhere). Anyone may connect to an
    /// abstract name; only a peer that proves the token is ever accepted.
    pub(crate) fn bind(socket_dir: Option<&Path>) -> Result<Self, TransportError> {
        Ok(Self {
            listener: Listener::bind(socket_dir, &random_hex(8)?)?,
            pending: Vec::new(),
            idle_wait: POLL_SLICE,
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
        self.listener.address()
    }

    /// Accepts the first connection from any process that proves `token` before `deadline`
    /// (`None`: no limit). `abandon` is asked between waits whether to give up (a stop
    /// request, say); its error is returned as is.
    pub(crate) fn accept<E: From<TransportError>>(
        &mut self,
        token: &str,
        max_frame: u32,
        deadline: Option<Instant>,
        mut abandon: impl FnMut() -> Option<E>,
    ) -> Result<(Connection, PeerPid), E> {
        self.accept_peer(Peer::Any, token, max_frame, deadline, &mut abandon)
    }

    /// Accepts the first connection of process `child` (by the kernel's word) that proves
    /// `token` before `deadline`. Another process that proves the token — it read it from the
    /// child's environment, say — is dropped, and the wait goes on. `abandon` is asked between
    /// waits whether to give up (the child exited, a kill came).
    pub(crate) fn accept_child<E: From<TransportError>>(
        &mut self,
        child: u32,
        token: &str,
        max_frame: u32,
        deadline: Option<Instant>,
        mut abandon: impl FnMut() -> Option<E>,
    ) -> Result<(Connection, PeerPid), E> {
        let peer = Peer::Process(child);
        self.accept_peer(peer, token, max_frame, deadline, &mut abandon)
    }

    fn accept_peer<E: From<TransportError>>(
        &mut self,
        peer: Peer,
        token: &str,
        max_frame: u32,
        deadline: Option<Instant>,
        abandon: &mut impl FnMut() -> Option<E>,
    ) -> Result<(Connection, PeerPid), E> {
        let mut pending = std::mem::take(&mut self.pending);
        let expected = Expected { peer, token };
        let accepted = self.accept_from(&mut pending, expected, deadline, abandon);
        self.pending = pending;
        let (stream, pid) = accepted?;
        Ok((
            Connection::new(stream, max_frame).map_err(TransportError::from)?,
            pid,
        ))
    }

    fn accept_from<E: From<TransportError>>(
        &self,
        pending: &mut Vec<Pending>,
        expected: Expected<'_>,
        deadline: Option<Instant>,
        abandon: &mut impl FnMut() -> Option<E>,
    ) -> Result<(Stream, PeerPid), E> {
        loop {
            let now = Instant::now();
            pending.retain(|p| p.deadline > now);
            if let Some(error) = abandon() {
                return Err(error);
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(TransportError::NotProven.into());
            }
            let slice = wait_slice(now, deadline, pending, self.idle_wait);
            let ready = wait_readable(&self.listener, pending, slice)?;
            if ready.listener {
                self.accept_waiting(pending)?;
            }
            for index in ready.streams.into_iter().rev() {
                let Some(waiting) = pending.get_mut(index) else {
                    continue;
                };
                match read_pending(waiting, expected) {
                    HelloState::Proven(_) => {
                        let proven = pending.swap_remove(index);
                        return Ok((proven.stream, proven.pid));
                    }
                    HelloState::Rejected => drop(pending.swap_remove(index)),
                    HelloState::Incomplete => {}
                }
            }
        }
    }

    /// Takes every connection waiting in the backlog, noting each peer's pid.
    fn accept_waiting(&self, pending: &mut Vec<Pending>) -> Result<(), TransportError> {
        while let Some(stream) = self.listener.accept()? {
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
            }
            let now = Instant::now();
            pending.push(Pending {
                pid: stream.peer_pid().ok(),
                stream,
                frames: hello_reader(),
                deadline: now.checked_add(HELLO_DEADLINE).unwrap_or(now),
            });
        }
        Ok(())
    }
}

/// What a hello must prove.
#[derive(Clone, Copy)]
struct Expected<'a> {
    peer: Peer,
    token: &'a str,
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
    listener: &Listener,
    pending: &[Pending],
    timeout: Duration,
) -> Result<Readable, TransportError> {
    let sources: Vec<Source<'_>> = std::iter::once(Source::from(listener))
        .chain(pending.iter().map(|p| Source::from(&p.stream)))
        .collect();
    let ready = sys::wait_readable(&sources, Some(timeout))?;
    let fired = |i: usize| ready.get(i).is_some_and(|r| r.readable || r.hung_up);
    Ok(Readable {
        listener: fired(0),
        streams: (0..pending.len()).filter(|&i| fired(i + 1)).collect(),
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

/// Reads what a pending connection has sent; judges the hello and then the peer once a whole
/// frame is in.
fn read_pending(pending: &mut Pending, expected: Expected<'_>) -> HelloState {
    let mut stream = &pending.stream;
    match read_hello(&mut pending.frames, &mut stream, expected.token) {
        HelloState::Proven(hello) => judge_peer(hello, pending.pid, expected.peer),
        other => other,
    }
}

/// The reader of one connection's hello: the runtime's one frame reader, limited to
/// [`MAX_HELLO`] and reading nothing past the hello, since what a client sends right after it
/// (a service's first request) belongs to the connection, not to the rendezvous.
#[doc(hidden)]
pub fn hello_reader() -> FrameReader {
    FrameReader::new(MAX_HELLO as u32).exact()
}

/// Encodes a hello frame, as a client sends it.
#[doc(hidden)]
pub fn hello_frame(token: &str) -> Vec<u8> {
    let hello = Hello {
        token: token.to_owned(),
    };
    // A token too long to encode gives no frame, which no rendezvous accepts.
    frame::encode_frame(&hello, u32::MAX).unwrap_or_default()
}

/// Reads what a connection has sent of its hello (`stream` is non-blocking, or anything else
/// that reads; a `WouldBlock` or a timeout is `Incomplete` and the next call resumes), and
/// judges it against `token` once the whole frame is in.
#[doc(hidden)]
pub fn read_hello<R: Read>(frames: &mut FrameReader, stream: &mut R, token: &str) -> HelloState {
    match frames.read_frame(stream) {
        Ok(Some(frame)) => judge_hello(frame.bytes(), token),
        Err(e) if e.is_timeout() => HelloState::Incomplete,
        // An end, a frame over the limit, a broken stream.
        Ok(None) | Err(_) => HelloState::Rejected,
    }
}

/// Judges a whole hello frame's body (trailing bytes are malformed).
fn judge_hello(body: &[u8], token: &str) -> HelloState {
    match frame::decode::<Hello>(body) {
        Ok(hello) if tokens_match(&hello.token, token) => HelloState::Proven(hello),
        _ => HelloState::Rejected,
    }
}

/// Whether a proven hello comes from the peer waited for, by the kernel's word (where the OS
/// does not say, the token is all there is to go by).
fn judge_peer(hello: Hello, kernel_pid: PeerPid, peer: Peer) -> HelloState {
    match (peer, kernel_pid) {
        (Peer::Process(child), Some(pid)) if pid != child => HelloState::Rejected,
        _ => HelloState::Proven(hello),
    }
}

/// Compares a claimed token with the real one in time that does not depend on where they
/// differ. Every token has the same length, so the length is no secret.
pub(crate) fn tokens_match(claimed: &str, token: &str) -> bool {
    let (claimed, token) = (claimed.as_bytes(), token.as_bytes());
    if claimed.len() != token.len() {
        return false;
    }
    // `black_box` keeps the optimiser from turning the fold back into an early exit.
    let difference = claimed
        .iter()
        .zip(token)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::thread;

    const LIMIT: u32 = 1024;

    fn hello_frame(token: &str) -> Vec<u8> {
        let hello = Hello {
            token: token.into(),
        };
        frame::encode_frame(&hello, LIMIT).unwrap()
    }

    fn accept_within(
        rendezvous: &mut Rendezvous,
        limit: Duration,
    ) -> Result<PeerPid, TransportError> {
        let deadline = Instant::now() + limit;
        rendezvous
            .accept("secret", LIMIT, Some(deadline), || None)
            .map(|(_, pid)| pid)
    }

    #[test]
    fn accepts_only_the_connection_that_proves_the_token() {
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let mut rogue = connect_stream(&address).unwrap();
            rogue.write_all(&hello_frame("guess-guess-guess")).unwrap();
            let mut honest = connect_stream(&address).unwrap();
            honest.write_all(&hello_frame("secret")).unwrap();
            (rogue, honest)
        });
        let pid = accept_within(&mut rendezvous, Duration::from_secs(5)).unwrap();
        assert_eq!(pid, Some(std::process::id()), "the pid is the kernel's");
        client.join().unwrap();
    }

    #[test]
    fn a_wrong_token_alone_is_never_accepted() {
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let mut rogue = connect_stream(&address).unwrap();
            rogue.write_all(&hello_frame("secreT")).unwrap();
            rogue
        });
        let result = accept_within(&mut rendezvous, Duration::from_millis(300));
        assert!(
            matches!(result, Err(TransportError::NotProven)),
            "{result:?}"
        );
        drop(client.join());
    }

    #[test]
    fn silent_and_trickling_connections_do_not_delay_the_real_one() {
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let silent = connect_stream(&address).unwrap();
            let mut trickle = connect_stream(&address).unwrap();
            trickle.write_all(&hello_frame("secret")[..2]).unwrap();
            let mut honest = connect_stream(&address).unwrap();
            honest.write_all(&hello_frame("secret")).unwrap();
            (silent, trickle, honest)
        });
        let connections = client.join().unwrap();
        accept_within(&mut rendezvous, Duration::from_secs(10)).unwrap();
        // Not delayed: the real one was taken while the other two were still waiting for
        // their hello deadline (a wait for either would have dropped it first).
        assert_eq!(rendezvous.pending.len(), 2);
        drop(connections);
    }

    fn judge(bytes: &[u8]) -> HelloState {
        read_hello(&mut hello_reader(), &mut &bytes[..], "secret")
    }

    #[test]
    fn a_hello_over_the_size_limit_or_with_trailing_bytes_is_rejected() {
        let mut oversized = ((MAX_HELLO + 1) as u32).to_le_bytes().to_vec();
        oversized.resize(frame::HEADER_LEN + MAX_HELLO + 1, b'a');
        assert!(matches!(judge(&oversized), HelloState::Rejected));
        let mut trailing = hello_frame("secret");
        trailing.push(0);
        trailing[0] += 1;
        assert!(matches!(judge(&trailing), HelloState::Rejected));
        let whole = hello_frame("secret");
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
    fn tokens_match_only_when_equal() {
        assert!(tokens_match("0123abcd", "0123abcd"));
        assert!(!tokens_match("0123abce", "0123abcd"));
        assert!(!tokens_match("1123abcd", "0123abcd"));
        assert!(!tokens_match("0123abc", "0123abcd"));
        assert!(!tokens_match("", "0123abcd"));
    }

    #[test]
    fn abandons_when_asked() {
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let result =
            rendezvous.accept("secret", LIMIT, None, || Some(TransportError::Disconnected));
        assert!(matches!(result, Err(TransportError::Disconnected)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn without_a_socket_directory_the_address_is_an_abstract_name_and_no_file() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        assert!(address.to_str().unwrap().starts_with('@'), "{address:?}");
        assert!(!address.exists());
        assert!(connect_stream(&address).is_ok());
        drop(rendezvous);
        assert!(connect_stream(&address).is_err());
    }

    /// Fault 8: another process that proved the token (it read it from the child's
    /// environment) is dropped, and the real child is still
    /// accepted. Here the "child" is this test process and the intruder a Python process.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_other_than_the_child_that_proves_the_token_is_dropped() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        use std::sync::mpsc;
        let mut rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let name = address.to_str().unwrap().trim_start_matches('@').to_owned();
        let child = std::process::id();
        let forged: String = hello_frame("secret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // Connects, proves the token, reports, then waits to be dropped.
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
             s.connect('\\0{name}')\n\
             s.sendall(bytes.fromhex('{forged}'))\n\
             print('sent', flush=True)\n\
             s.settimeout(10)\n\
             try:\n    s.recv(1)\nexcept Exception:\n    pass\n\
             print('dropped', flush=True)\n"
        );
        let mut intruder = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = intruder.stdout.take().unwrap();
        let (said, heard) = mpsc::channel();
        thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if said.send(line).is_err() {
                    break;
                }
            }
        });
        // The real child connects only once the intruder was dropped, so the intruder is the
        // first and only connection that proves the token until then.
        let real = thread::spawn(move || {
            let bound = Duration::from_secs(20);
            assert_eq!(heard.recv_timeout(bound).unwrap(), "sent");
            assert_eq!(heard.recv_timeout(bound).unwrap(), "dropped");
            let mut stream = connect_stream(&address).unwrap();
            stream.write_all(&hello_frame("secret")).unwrap();
            stream
                .write_all(&frame::encode_frame(&7u32, LIMIT).unwrap())
                .unwrap();
            stream
        });
        let deadline = Some(Instant::now() + Duration::from_secs(20));
        let accepted =
            rendezvous.accept_child(child, "secret", LIMIT, deadline, || None::<TransportError>);
        let (connection, pid) = accepted.unwrap();
        assert_eq!(pid, Some(child));
        let stream = connection.stream();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reader = frame::FrameReader::new(LIMIT);
        let marker: Option<u32> = reader.read_message(&mut &*stream).unwrap();
        assert_eq!(
            marker,
            Some(7),
            "the accepted connection is not the real child's"
        );
        let _stream = real.join().unwrap();
        let _ = intruder.kill();
        let _ = intruder.wait();
    }
}
