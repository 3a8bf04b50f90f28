//! A Redis server of the test's own: `redis-server --port <free port> --save "" --appendonly no`
//! on 127.0.0.1, started and removed by the test (stopped on drop), restartable on the same
//! port. Included with `#[path = "support/redis.rs"] mod redis_server;`.
//!
//! [`RedisServer::start_tls`] starts one that also listens with TLS, its certificate signed by
//! a CA this test binary makes at run time ([`test_ca`]).
//!
//! Without `redis-server` on the PATH, [`RedisServer::start`] gives `None` after a notice, so
//! a developer without it still runs the rest; under `CI=true` it panics instead (`.ci/services`
//! installs it), because CI never skips silently.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const READY: Duration = Duration::from_secs(10);

/// Makes the server get SIGKILL when the thread that starts it ends (Linux), so a test
/// binary aborted by its bound leaves no server behind.
fn die_with_this_thread(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and calls only `prctl`, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// A running `redis-server`, killed and reaped on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// `--requirepass`, if any.
    password: Option<String>,
    /// The TLS port, if the server listens with TLS too (beside `port`, which stays plain so
    /// the start can ask the server for its pid).
    tls_port: Option<u16>,
}

/// A CA made for this test binary and a certificate it signed for `127.0.0.1` and
/// `localhost`, as PEM files under the target's temporary directory.
pub struct TestCa {
    /// The CA's certificate: what a client must trust.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The binary's test CA, made on first use (one per process, so every TLS server of a test
/// binary is trusted through the same file).
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair,
        };
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "skprocess test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("a server key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server parameters");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&server_key, &issuer)
            .expect("the server certificate");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("skprocess-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the CA's directory");
        let files = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).expect("writing the CA");
        std::fs::write(&files.cert, cert.pem()).expect("writing the certificate");
        std::fs::write(&files.key, server_key.serialize_pem()).expect("writing the key");
        files
    })
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers; `None` (with a notice) when
    /// `redis-server` is not installed and this is not CI.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Like [`start`](RedisServer::start), asking clients for `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> Option<Self> {
        Self::start_with(Some(password.to_owned()))
    }

    /// Like [`start`](RedisServer::start), listening with TLS too (on [`tls_url`]), its
    /// certificate signed by [`test_ca`]. Clients need not present a certificate.
    ///
    /// [`tls_url`]: RedisServer::tls_url
    pub fn start_tls() -> Option<Self> {
        Self::start_on(None, true)
    }

    fn start_with(password: Option<String>) -> Option<Self> {
        Self::start_on(password, false)
    }

    fn start_on(password: Option<String>, tls: bool) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is not installed: under CI these tests need it (`.ci/services`)"
            );
            eprintln!("redis-server is not installed; skipping (install it: `.ci/services`)");
            return None;
        }
        // A port taken between our probe and the server's bind fails the start; try again.
        for _ in 0..5 {
            let port = free_port();
            // Both probed before either is bound, so they differ.
            let tls_port = tls.then(|| {
                loop {
                    let other = free_port();
                    if other != port {
                        break other;
                    }
                }
            });
            let mut server = Self {
                port,
                child: None,
                password: password.clone(),
                tls_port,
            };
            if server.launch().is_ok() {
                return Some(server);
            }
        }
        panic!(
            "redis-server did not start on any of five free ports{}",
            if tls {
                " (with TLS: is it built with TLS support?)"
            } else {
                ""
            }
        );
    }

    /// The server's URL (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's TLS URL (database 0), by IP address, which its certificate names.
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a server started with start_tls");
        format!("rediss://127.0.0.1:{port}/0")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL) and reaps it: everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY;
        // The old socket may linger a moment; the new server retries its bind until then.
        while let Err(e) = self.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        if let Some(tls_port) = self.tls_port {
            let ca = test_ca();
            command
                .args(["--tls-port", &tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(&ca.cert)
                .arg("--tls-key-file")
                .arg(&ca.key)
                .arg("--tls-ca-cert-file")
                .arg(&ca.ca)
                .args(["--tls-auth-clients", "no"]);
        }
        die_with_this_thread(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        let deadline = Instant::now() + READY;
        loop {
            // The server answering must be this one: another test's server may hold the
            // port (ours then fails its bind and exits), and sharing it would mix two tests.
            // The plain port answers for the pid; the server binds all its ports before it
            // serves, so its TLS port is listening by then (checked too, cheaply).
            if ping(self.port)
                && server_pid(self.port, self.password.as_deref()) == Some(child.id())
                && self
                    .tls_port
                    .is_none_or(|port| TcpStream::connect(("127.0.0.1", port)).is_ok())
            {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a server on `port` answers `PING` within a second (a server that asks for a
/// password answers too: with `-NOAUTH`).
pub fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
}

/// The process id of the server on `port` (`INFO server`), logging in with `password` first.
fn server_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut reader = std::io::BufReader::new(stream.try_clone().ok()?);
    let mut writer = stream;
    let mut line = String::new();
    if let Some(password) = password {
        write!(writer, "AUTH {password}\r\n").ok()?;
        std::io::BufRead::read_line(&mut reader, &mut line).ok()?;
        if !line.starts_with("+OK") {
            return None;
        }
    }
    writer.write_all(b"INFO server\r\n").ok()?;
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).ok()?;
    let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free port on 127.0.0.1")
}
