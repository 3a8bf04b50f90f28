//! A `MONITOR` connection to a test's Redis server: every command the server ran, kept in
//! memory, so a test whose count comes out short can say whether the server ever received
//! the missing command. Included with `#[path = "support/monitor.rs"] mod monitor;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};

/// The commands a server ran since [`Monitor::start`], one line each as `MONITOR` gives them:
/// `+<time> [<db> <client address>] "<COMMAND>" "<argument>" …`.
pub struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    /// Starts watching the server on `port` (no password); the reading thread ends when the
    /// server does.
    pub fn start(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("a MONITOR connection");
        stream.write_all(b"MONITOR\r\n").expect("sending MONITOR");
        let mut reader = BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR's answer");
        assert!(ok.starts_with("+OK"), "MONITOR answered {ok:?}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                kept.push(line.trim_end().to_owned());
                line.clear();
            }
        });
        Self { lines }
    }

    /// What the server did to the share field named `field`: how many `INCRBY`s it ran on
    /// it, and every command on it that is neither that nor a read.
    pub fn field_report(&self, field: &str) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let key = format!(":f:{field}\"");
        let touching: Vec<&String> = lines.iter().filter(|line| line.contains(&key)).collect();
        let increments = touching
            .iter()
            .filter(|line| line.contains("\"INCRBY\""))
            .count();
        let others: Vec<&&String> = touching
            .iter()
            .filter(|line| {
                !["\"INCRBY\"", "\"GET\"", "\"PEXPIRE\"", "\"WATCH\""]
                    .iter()
                    .any(|command| line.contains(command))
            })
            .collect();
        format!(
            "the server ran {increments} INCRBY on `{field}` (of {} commands seen); its other writes: {others:#?}",
            lines.len()
        )
    }
}
