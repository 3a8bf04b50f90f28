//! Local-socket transport: a private rendezvous point, authenticated accept, and connect.
//!
//! On Unix the socket file lives in a fresh directory with mode 0700 and both are removed as soon
//! as the child has connected (or the spawn failed). On Windows a named pipe with an unguessable
//! name is used instead. Either way the child must also prove a random token.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{
    ConnectOptions, ListenerNonblockingMode, ListenerOptions, Stream,
};

use crate::error::Error;
use crate::wire::{FrameReader, ToParent, WireError};

/// Longest pause between two accept attempts while waiting for the child.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(1);

/// Returns `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A listening socket that exists only until the child has connected.
pub(crate) struct Rendezvous {
    listener: interprocess::local_socket::Listener,
    address: String,
    _dir: Option<PrivateDir>,
}

impl Rendezvous {
    /// Binds a fresh, private rendezvous point.
    pub(crate) fn bind(socket_dir: Option<&Path>) -> Result<Self, Error> {
        let (address, dir) = private_address(socket_dir)?;
        let listener = ListenerOptions::new()
            .name(name_of(&address)?)
            .nonblocking(ListenerNonblockingMode::Accept)
            .create_sync()?;
        Ok(Self {
            listener,
            address,
            _dir: dir,
        })
    }

    /// The address a child passes to [`connect`].
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Accepts the first connection that proves `token`, giving up when `child` exits or
    /// `timeout` passes. Connections with a wrong or missing token are dropped.
    pub(crate) fn accept(
        self,
        token: &str,
        max_frame: u32,
        timeout: Duration,
        child: &mut Child,
    ) -> Result<Stream, Error> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_micros(20);
        loop {
            match self.listener.accept() {
                Ok(stream) => match prove_token(&stream, token, max_frame, deadline) {
                    Ok(()) => return Ok(stream),
                    Err(_) => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(status) = child.try_wait()? {
                return Err(Error::Bootstrap {
                    detail: format!("it exited with {status}"),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Bootstrap {
                    detail: format!("no connection within {timeout:?}"),
                });
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
        }
    }
}

/// Reads the child's hello and checks its token before `deadline`.
fn prove_token(
    stream: &Stream,
    token: &str,
    max_frame: u32,
    deadline: Instant,
) -> Result<(), Error> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    stream.set_recv_timeout(Some(remaining.max(Duration::from_millis(1))))?;
    let mut reader = FrameReader::new(max_frame);
    let hello: Option<ToParent> = reader.read_message(&mut &*stream)?;
    stream.set_recv_timeout(None)?;
    match hello {
        Some(ToParent::Hello { token: given, .. }) if constant_time_eq(&given, token) => Ok(()),
        _ => Err(WireError::Malformed("connection did not prove the token".into()).into()),
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

/// Connects to a rendezvous address.
pub(crate) fn connect(address: &str) -> io::Result<Stream> {
    ConnectOptions::new().name(name_of(address)?).connect_sync()
}

#[cfg(unix)]
fn name_of(address: &str) -> io::Result<interprocess::local_socket::Name<'_>> {
    address.to_fs_name::<interprocess::local_socket::GenericFilePath>()
}

#[cfg(windows)]
fn name_of(address: &str) -> io::Result<interprocess::local_socket::Name<'_>> {
    address.to_ns_name::<interprocess::local_socket::GenericNamespaced>()
}

#[cfg(unix)]
fn private_address(socket_dir: Option<&Path>) -> Result<(String, Option<PrivateDir>), Error> {
    let dir = PrivateDir::create(socket_dir)?;
    let path = dir.path.join("s");
    let address = path
        .to_str()
        .ok_or_else(|| Error::Config(format!("socket path {} is not UTF-8", path.display())))?
        .to_owned();
    Ok((address, Some(dir)))
}

#[cfg(windows)]
fn private_address(_socket_dir: Option<&Path>) -> Result<(String, Option<PrivateDir>), Error> {
    Ok((format!("skprocess-{}", random_hex(16)?), None))
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
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(Self { path })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Best effort: the directory is private and empty of anything but our socket.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::write_message;
    use std::process::Command;

    fn sleeper() -> Child {
        Command::new(if cfg!(windows) { "timeout" } else { "sleep" })
            .arg("5")
            .spawn()
            .unwrap()
    }

    #[test]
    fn rejects_a_wrong_token_and_accepts_the_right_one() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let address = rendezvous.address().to_owned();
        let client = thread::spawn(move || {
            let mut rogue = connect(&address).unwrap();
            let hello = ToParent::Hello {
                token: "guess".into(),
                pid: 1,
            };
            write_message(&mut rogue, &hello, 1024).unwrap();
            let mut honest = connect(&address).unwrap();
            let hello = ToParent::Hello {
                token: "secret".into(),
                pid: 2,
            };
            write_message(&mut honest, &hello, 1024).unwrap();
            (rogue, honest)
        });
        let mut child = sleeper();
        let accepted = rendezvous.accept("secret", 1024, Duration::from_secs(5), &mut child);
        let _ = child.kill();
        let _ = child.wait();
        assert!(accepted.is_ok());
        client.join().unwrap();
    }

    #[test]
    fn gives_up_when_nobody_proves_the_token() {
        let rendezvous = Rendezvous::bind(None).unwrap();
        let mut child = sleeper();
        let started = Instant::now();
        let result = rendezvous.accept("secret", 1024, Duration::from_millis(100), &mut child);
        let _ = child.kill();
        let _ = child.wait();
        assert!(matches!(result, Err(Error::Bootstrap { .. })));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[cfg(unix)]
    #[test]
    fn socket_directory_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let rendezvous = Rendezvous::bind(None).unwrap();
        let dir = Path::new(rendezvous.address())
            .parent()
            .unwrap()
            .to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(rendezvous);
        assert!(!dir.exists());
    }
}
