//! The named-pipe socket layer against what the portable code expects of a socket.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use super::*;
use crate::sys::{Source, wait_readable};

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn the_peer_pid_comes_from_the_pipe_on_both_ends() {
    let (a, b) = Stream::pair().unwrap();
    assert_eq!(a.peer_pid().unwrap(), std::process::id());
    assert_eq!(b.peer_pid().unwrap(), std::process::id());
}

#[test]
fn a_listener_accepts_without_blocking_and_keeps_its_name() {
    let listener = Listener::bind(None, "7e57a11").unwrap();
    assert!(listener.accept().unwrap().is_none());
    // Windows refuses a second first instance; Wine 8 does not enforce the flag.
    if !under_wine() {
        assert!(
            Listener::bind(None, "7e57a11").is_err(),
            "a second owner of the name"
        );
    }
    for round in 0..3u8 {
        let mut client = Stream::connect(listener.address()).unwrap();
        let ready = wait_readable(&[Source::from(&listener)], Some(BOUND)).unwrap();
        assert!(ready[0].readable, "round {round}");
        let mut server = listener.accept().unwrap().expect("a waiting connection");
        server.set_nonblocking(false).unwrap();
        client.write_all(&[round]).unwrap();
        let mut byte = [0u8];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(byte[0], round);
    }
    assert!(listener.accept().unwrap().is_none());
}

/// Windows cancels the I/O of a thread that exits, the pending connects of the instances a
/// listener armed among it: a listener bound on a thread that has ended still accepts (a
/// process queue started from a short-lived thread lost its first worker's connection).
#[test]
fn a_listener_bound_by_a_thread_that_ended_still_accepts() {
    let listener = std::thread::spawn(|| Listener::bind(None, "e7de0d").unwrap())
        .join()
        .unwrap();
    for round in 0..3u8 {
        let mut client = Stream::connect(listener.address()).unwrap();
        let deadline = Instant::now() + BOUND;
        let mut server = loop {
            let _ = wait_readable(&[Source::from(&listener)], Some(BOUND)).unwrap();
            if let Some(server) = listener.accept().unwrap() {
                break server;
            }
            assert!(Instant::now() < deadline, "round {round}: never accepted");
        };
        server.set_nonblocking(false).unwrap();
        client.write_all(&[round]).unwrap();
        let mut byte = [0u8];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(byte[0], round);
    }
}

/// An accepted stream does not block, as on Unix: the rendezvous reads many pending hellos on
/// one thread, and a peer that sent half of one must not hold it (a blocking read there held
/// the server's accept thread until the trickling peer left).
#[test]
fn an_accepted_stream_does_not_block_until_made_to() {
    let listener = Listener::bind(None, "ac0ced").unwrap();
    let mut client = Stream::connect(listener.address()).unwrap();
    let ready = wait_readable(&[Source::from(&listener)], Some(BOUND)).unwrap();
    assert!(ready[0].readable);
    let server = listener.accept().unwrap().expect("a waiting connection");
    // Read on another thread, so a read that blocks fails the test instead of hanging it.
    let (sender, results) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        let _ = sender.send((&server).read(&mut buf));
        let Ok(ready) = wait_readable(&[Source::from(&server)], Some(BOUND)) else {
            return;
        };
        assert!(ready[0].readable);
        let _ = sender.send((&server).read(&mut buf));
        let _ = sender.send((&server).read(&mut buf));
    });
    let next = || results.recv_timeout(BOUND).expect("the read blocked");
    let read = next();
    assert!(
        matches!(&read, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "{read:?}"
    );
    client.write_all(b"ab").unwrap();
    assert_eq!(next().unwrap(), 2);
    let read = next();
    assert!(
        matches!(&read, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "half a message, then nothing: {read:?}"
    );
    reader.join().unwrap();
}

/// A named pipe has no half-close: `shutdown_write` says so and leaves the connection open
/// both ways (it used to end it both ways, cutting off the answer the caller waited for).
#[test]
fn shutdown_write_is_refused_and_leaves_the_connection_open() {
    let (a, b) = Stream::pair().unwrap();
    let refused = a.shutdown_write().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unsupported);
    assert!(!a.peer_closed() && !b.peer_closed());
    b.set_read_timeout(Some(BOUND)).unwrap();
    a.set_read_timeout(Some(BOUND)).unwrap();
    (&a).write_all(b"asked").unwrap();
    let mut buf = [0u8; 5];
    (&b).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"asked");
    (&b).write_all(b"reply").unwrap();
    (&a).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"reply");
}

#[test]
fn a_closed_end_is_the_end_of_the_stream_after_the_data() {
    let (mut a, b) = Stream::pair().unwrap();
    a.write_all(b"last words").unwrap();
    drop(a);
    let mut all = Vec::new();
    (&b).read_to_end(&mut all).unwrap();
    assert_eq!(all, b"last words");
    assert!(b.peer_closed());
    assert!(b.wait_hangup());
}

#[test]
fn a_shutdown_wakes_a_blocked_reader_and_reaches_the_peer() {
    let (a, b) = Stream::pair().unwrap();
    let a = std::sync::Arc::new(a);
    let reader = {
        let a = std::sync::Arc::clone(&a);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            (&*a).read(&mut buf)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    a.shutdown_both().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 0);
    let mut buf = [0u8; 8];
    b.set_read_timeout(Some(BOUND)).unwrap();
    assert_eq!((&b).read(&mut buf).unwrap(), 0, "the peer reads the end");
}

#[test]
fn reads_time_out_or_would_block_as_on_unix() {
    let (a, _b) = Stream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        (&a).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    a.set_read_timeout(None).unwrap();
    a.set_nonblocking(true).unwrap();
    assert_eq!(
        (&a).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());
}

#[test]
fn a_deadline_write_takes_what_fits_and_then_would_block() {
    let (a, b) = Stream::pair().unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut total = 0;
    let error = loop {
        match a.send_before(b"head", &chunk, Instant::now()) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(total < 1 << 30, "the pipe never filled");
    };
    assert_eq!(error.kind(), ErrorKind::WouldBlock);
    assert!(total > 0);
    // Every byte that was reported written arrives, in order, and nothing more.
    drop(a);
    let mut all = Vec::new();
    (&b).read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), total);
}

#[test]
fn readiness_says_which_stream_is_readable_and_which_hung_up() {
    let (a, mut b) = Stream::pair().unwrap();
    let (c, d) = Stream::pair().unwrap();
    let sources = [Source::from(&a), Source::from(&c)];
    let idle = wait_readable(&sources, Some(Duration::ZERO)).unwrap();
    assert!(idle.iter().all(|r| !r.readable && !r.hung_up));
    let idle = wait_readable(&sources, Some(Duration::from_millis(20))).unwrap();
    assert!(idle.iter().all(|r| !r.readable && !r.hung_up));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        b.write_all(b"x").unwrap();
        b
    });
    let ready = wait_readable(&sources, Some(BOUND)).unwrap();
    assert!(ready[0].readable && !ready[0].hung_up, "{ready:?}");
    let _b = writer.join().unwrap();
    drop(d);
    let deadline = Instant::now() + BOUND;
    loop {
        let ready = wait_readable(&sources, Some(BOUND)).unwrap();
        if ready[1].hung_up {
            assert!(ready[1].readable);
            break;
        }
        assert!(Instant::now() < deadline, "the hang-up was never seen");
    }
}

#[test]
fn a_large_transfer_arrives_whole_both_ways_at_once() {
    let (a, b) = Stream::pair().unwrap();
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let send = |mut s: &Stream, data: &[u8]| s.write_all(data).unwrap();
    let receive = |mut s: &Stream, len: usize| {
        let mut got = vec![0u8; len];
        s.read_exact(&mut got).unwrap();
        got
    };
    std::thread::scope(|scope| {
        scope.spawn(|| send(&a, &data));
        scope.spawn(|| send(&b, &data));
        let at_b = scope.spawn(|| receive(&b, data.len()));
        let at_a = receive(&a, data.len());
        assert!(at_a == data);
        assert!(at_b.join().unwrap() == data);
    });
}

/// Whether this runs under Wine (its ntdll exports `wine_get_version`).
fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: both names are NUL-terminated; ntdll is always loaded.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

#[test]
fn deadline_writes_cut_anywhere_lose_and_repeat_nothing_while_the_peer_reads() {
    let (a, b) = Stream::pair().unwrap();
    let total: usize = 8 * 1024 * 1024;
    let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 7000];
            b.set_read_timeout(Some(BOUND)).unwrap();
            while got.len() < total {
                let n = match (&b).read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let first_bad = got.iter().zip(&data).position(|(x, y)| x != y);
                        panic!(
                            "{e} after {} bytes; first difference at {first_bad:?}",
                            got.len()
                        );
                    }
                };
                assert!(n > 0, "early end at {}", got.len());
                got.extend_from_slice(&buf[..n]);
                if got.len() % 3 == 0 {
                    std::thread::yield_now();
                }
            }
            got
        });
        let mut sent = 0;
        let mut cuts = 0;
        let deadline = Instant::now() + BOUND * 3;
        while sent < total {
            if Instant::now() >= deadline {
                eprintln!("sent only {sent}");
                break;
            }
            let end = (sent + 100_000).min(total);
            match a.send_before(&data[sent..end], &[], Instant::now()) {
                Ok(n) => {
                    cuts += usize::from(n < end - sent);
                    sent += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let got = reader.join().unwrap();
        let first_bad = got.iter().zip(&data).position(|(x, y)| x != y);
        eprintln!("got {} first difference at {first_bad:?}", got.len());
        assert!(got == data, "the stream was corrupted ({cuts} cut writes)");
        eprintln!("{cuts} cut writes");
    });
}

/// A write left in flight by a thread that then ends still arrives whole: Windows cancels the
/// pending I/O a thread issued when it exits, unless the handle is bound to a completion port.
#[test]
fn a_write_in_flight_when_its_thread_ends_still_arrives() {
    let (a, b) = Stream::pair().unwrap();
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    // Nobody reads `b` yet: the writes fill the pipe and `b`'s inbox, and the last one is
    // left in flight by a thread that then ends.
    let sent = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut sent = 0;
                let deadline = Instant::now() + BOUND;
                while sent < data.len() && Instant::now() < deadline {
                    let end = (sent + 100_000).min(data.len());
                    let soon = Instant::now() + Duration::from_millis(20);
                    match a.send_before(&data[sent..end], &[], soon) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
                        Err(e) => panic!("{e}"),
                    }
                }
                panic!("the pipe took {sent} bytes without a write left in flight");
            })
            .join()
            .unwrap()
    });
    // The writing thread is gone (joined: it has exited, and with it any I/O the system
    // cancels at a thread's exit); whatever it handed the pipe must still come.
    b.set_read_timeout(Some(BOUND)).unwrap();
    let mut got = vec![0u8; sent];
    let mut at = 0;
    while at < sent {
        match (&b).read(&mut got[at..]) {
            Ok(0) => panic!("early end after {at} of {sent} bytes"),
            Ok(n) => at += n,
            Err(e) => panic!("{e} after {at} of {sent} bytes"),
        }
    }
    assert!(got == data[..sent], "the bytes differ");
}
