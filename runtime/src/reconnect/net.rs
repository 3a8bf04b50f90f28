//! Sockets: a TCP stream reopens by connecting to its address again, a Unix stream by
//! connecting to its path again. What was in flight on the old connection is not carried.

#[cfg(unix)]
use crate::sys::UnixStream;
use std::net::TcpStream;
#[cfg(unix)]
use std::path::PathBuf;

use crate::reconnect::{Reconnect, ReconnectError, Secret, open_error};

impl Reconnect for TcpStream {
    /// The address to connect to, such as `"127.0.0.1:6000"`.
    type Recipe = String;
    const KIND: &'static str = "tcp";

    fn open(address: &String, _: Option<&Secret>) -> Result<Self, ReconnectError> {
        TcpStream::connect(address).map_err(|e| open_error(Self::KIND, address, e))
    }
}

#[cfg(unix)]
impl Reconnect for UnixStream {
    /// The socket's path.
    type Recipe = PathBuf;
    const KIND: &'static str = "unix";

    fn open(path: &PathBuf, _: Option<&Secret>) -> Result<Self, ReconnectError> {
        UnixStream::connect(path).map_err(|e| open_error(Self::KIND, path.display(), e))
    }
}
