//! A loopback TCP proxy in front of a server, that the test can cut (a partition: every open
//! connection is shut down and new ones are closed at once) and heal, or slow down (each
//! chunk waits a delay before it is passed on). Each "host" of a test reaches Redis through
//! its own proxy, so one host's link can fail while the others' hold. Included with
//! `#[path = "support/proxy.rs"] mod proxy;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A proxy from a port of its own on 127.0.0.1 to `127.0.0.1:<target>`.
pub struct Proxy {
    port: u16,
    state: Arc<State>,
}

struct State {
    target: u16,
    cut: AtomicBool,
    closing: AtomicBool,
    delay_ms: AtomicU64,
    /// Both ends of every forwarded connection, to shut down at a cut.
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(State {
            target,
            cut: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || accept(&listener, &accepting));
        Self { port, state }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL through the proxy (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Cuts the link: open connections are shut down, new ones closed at once.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.shut_all();
    }

    /// Lets new connections through again.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Delays every chunk passed on by `delay` (a slow link); zero for none.
    pub fn slow(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.closing.store(true, Ordering::SeqCst);
        self.state.shut_all();
        // Wakes the accept thread so that it sees `closing` and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl State {
    fn shut_all(&self) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn keep(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(clone);
        }
    }
}

fn accept(listener: &TcpListener, state: &Arc<State>) {
    for client in listener.incoming() {
        if state.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", state.target)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        state.keep(&client);
        state.keep(&server);
        for (from, to) in [(&client, &server), (&server, &client)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let state = Arc::clone(state);
            std::thread::spawn(move || pass(from, to, &state));
        }
    }
}

/// Passes bytes from `from` to `to` until either end closes or the proxy is cut.
fn pass(mut from: TcpStream, mut to: TcpStream, state: &State) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if state.cut.load(Ordering::SeqCst) || to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
