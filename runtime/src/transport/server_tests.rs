//! The server's guarantees, each shown with real sockets: the cap, hellos off the serving
//! path, and writes that never wait on a stopped peer.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::*;
use crate::transport::frame;
use crate::transport::rendezvous;

const LIMIT: u32 = 4 * 1024 * 1024;
const BOUND: Duration = Duration::from_secs(10);

/// Answers each request (a byte count) with that many bytes.
struct Echo;

impl Session for Echo {
    fn on_frame(&mut self, peer: &Peer, frame: &[u8]) -> Flow {
        let Ok(len) = frame::decode::<u32>(frame) else {
            return Flow::Close;
        };
        let reply = serde_bytes::ByteBuf::from(vec![7u8; len as usize]);
        match peer.send(&reply) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }
}

fn server(max_connections: usize) -> Server {
    let mut config = ServerConfig::new("test-server", LIMIT);
    config.max_connections = max_connections;
    config.write_timeout = Duration::from_millis(200);
    Server::start(config, |_| Some(Echo)).unwrap()
}

/// Asks for `len` bytes and checks they come back.
fn round_trip(connection: &Connection, len: u32) {
    connection.send(&len).unwrap();
    let mut frames = FrameReader::new(LIMIT);
    let mut stream = connection.stream();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let reply: serde_bytes::ByteBuf = frames.read_message(&mut stream).unwrap().unwrap();
    assert_eq!(reply.len(), len as usize);
}

fn wait_until(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_connection_past_the_cap_is_refused_clearly_and_the_others_keep_working() {
    let server = server(2);
    let endpoint = server.endpoint().clone();
    let first = connect(&endpoint, LIMIT).unwrap();
    let second = connect(&endpoint, LIMIT).unwrap();
    wait_until(|| server.live() == 2, "two connections served");
    let third = connect(&endpoint, LIMIT);
    assert!(
        matches!(third, Err(TransportError::TooManyConnections { limit: 2 })),
        "{third:?}"
    );
    round_trip(&first, 10);
    round_trip(&second, 100_000);
    // A slot that frees is a slot again.
    drop(first);
    wait_until(|| server.live() == 1, "the closed connection still counts");
    let again = connect(&endpoint, LIMIT).unwrap();
    round_trip(&again, 10);
    round_trip(&second, 10);
}

#[test]
fn a_silent_or_trickling_peer_does_not_delay_another_ones_admission() {
    let server = server(8);
    let endpoint = server.endpoint().clone();
    let mut silent = rendezvous::connect_stream(&endpoint.address).unwrap();
    let mut trickle = rendezvous::connect_stream(&endpoint.address).unwrap();
    let hello = rendezvous::hello_frame(&endpoint.token);
    trickle.write_all(&hello[..3]).unwrap();
    let honest = connect(&endpoint, LIMIT).unwrap();
    round_trip(&honest, 10);
    // Both are still waiting for their hello deadline: the honest peer was admitted before
    // it, not after (a dropped connection would read as an end of stream).
    for stream in [&mut silent, &mut trickle] {
        stream.set_nonblocking(true).unwrap();
        let read = stream.read(&mut [0u8; 1]);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{read:?}"
        );
    }
}

#[test]
fn a_peer_that_stops_reading_is_dropped_and_never_holds_up_another() {
    let server = server(2);
    let endpoint = server.endpoint().clone();
    // Asks for far more than the socket buffers hold, and never reads.
    let stopped = connect(&endpoint, LIMIT).unwrap();
    for _ in 0..4 {
        stopped.send(&(LIMIT / 2)).unwrap();
    }
    let other = connect(&endpoint, LIMIT).unwrap();
    round_trip(&other, 1_000_000);
    // The stopped peer's thread gave up at its write deadline and freed its slot; a blocking
    // write would hold both for as long as the peer stays stopped.
    wait_until(
        || server.live() == 1,
        "the stopped peer still holds its slot",
    );
    let next = connect(&endpoint, LIMIT).unwrap();
    round_trip(&next, 10);
}

#[test]
fn a_stalled_handshake_is_dropped_at_its_first_frame_deadline() {
    let mut config = ServerConfig::new("test-server", LIMIT);
    config.first_frame_timeout = Some(Duration::from_millis(100));
    let server = Server::start(config, |_| Some(Echo)).unwrap();
    let stalled = connect(server.endpoint(), LIMIT).unwrap();
    wait_until(
        || server.live() == 0,
        "the stalled connection is still served",
    );
    let mut stream = stalled.stream();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn dropping_the_server_ends_its_connections() {
    let server = server(4);
    let connection = connect(server.endpoint(), LIMIT).unwrap();
    round_trip(&connection, 1);
    drop(server);
    let mut stream = connection.stream();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
}
