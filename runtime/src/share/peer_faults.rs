//! A lying peer against a live coordinator: whatever a holder of the endpoint sends in place
//! of a write ring, it can at most get its own connection dropped; the coordinator keeps
//! serving everyone else.

use std::io::Read;
use std::time::Duration;

use crate::protocol::share::{FieldOp, Request, Target};
use crate::share::builtins::tests::Pair;
use crate::share::client::{Client, SHARE_MAX_FRAME};
use crate::share::link::Backend;
use crate::sys::shm::{self, Region, RegionFd};
use crate::transport::Connection;
use crate::transport::endpoint::Endpoint;
use crate::transport::frame;
use crate::transport::server;

fn endpoint_of(share: &crate::Share<Pair>) -> Endpoint {
    share.endpoint()
}

/// Sends the ring request on a fresh connection, with `fd` when there is one.
fn ask_to_attach(endpoint: &Endpoint, fd: Option<RegionFd>) -> Connection {
    let connection = server::connect(endpoint, SHARE_MAX_FRAME).unwrap();
    let request = frame::encode_frame(&Request::AttachRing, SHARE_MAX_FRAME).unwrap();
    match fd {
        Some(fd) => shm::send_with_fd(connection.stream(), &request, &fd).unwrap(),
        None => std::io::Write::write_all(&mut connection.stream(), &request).unwrap(),
    }
    connection
}

/// Whether the coordinator ended the connection (bounded: a connection it keeps would time
/// out instead).
fn was_dropped(connection: &Connection) -> bool {
    let stream = connection.stream();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut byte = [0u8; 1];
    matches!((&mut &*stream).read(&mut byte), Ok(0))
}

fn still_serves(share: &crate::Share<Pair>, endpoint: &Endpoint, value: u64) {
    let client = Client::new(endpoint.clone());
    let set = Target::Field {
        index: 0,
        op: FieldOp::Set,
    };
    client
        .write(set, &frame::encode(&value).unwrap(), None)
        .unwrap();
    assert_eq!(share.a.get().unwrap(), value);
}

#[test]
fn a_region_of_the_wrong_size_an_ordinary_file_or_none_gets_the_peer_dropped() {
    let share = crate::Share::new(Pair::default()).unwrap();
    let endpoint = endpoint_of(&share);
    let (_short, short) = Region::create("skp-short", 4096).unwrap();
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let cases = [
        ("a short region", Some(short)),
        ("an ordinary file", Some(RegionFd::from_file(file))),
        ("no region", None),
    ];
    for (value, (case, fd)) in (1u64..).zip(cases) {
        let connection = ask_to_attach(&endpoint, fd);
        assert!(was_dropped(&connection), "{case}: the peer was kept");
        still_serves(&share, &endpoint, value);
    }
}

#[test]
fn a_peer_that_publishes_wild_ring_indices_is_dropped() {
    let share = crate::Share::new(Pair::default()).unwrap();
    let endpoint = endpoint_of(&share);
    let liar = Client::new(endpoint.clone());
    let get = Target::Field {
        index: 0,
        op: FieldOp::Get,
    };
    liar.call(get, &[], None).unwrap();
    liar.publish_wild_tail(u64::MAX);
    assert!(
        liar.call(get, &[], None).is_err(),
        "the liar is still served"
    );
    still_serves(&share, &endpoint, 5);
}

/// A write on the socket could pass a read unseen (only ring writes are drained before a
/// call): the runtime's clients never send one, and a peer that does is dropped, its write
/// not applied.
#[test]
fn a_write_on_the_socket_gets_the_peer_dropped_unapplied() {
    let share = crate::Share::new(Pair::default()).unwrap();
    let endpoint = endpoint_of(&share);
    let connection = server::connect(&endpoint, SHARE_MAX_FRAME).unwrap();
    let args = frame::encode(&9u64).unwrap();
    let set = Target::Field {
        index: 0,
        op: FieldOp::Set,
    };
    connection
        .send(&Request::Write {
            target: set,
            args: &args,
        })
        .unwrap();
    assert!(was_dropped(&connection), "the peer was kept");
    assert_eq!(share.a.get().unwrap(), 0, "the socket write was applied");
    still_serves(&share, &endpoint, 3);
}
