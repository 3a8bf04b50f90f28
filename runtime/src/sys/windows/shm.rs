//! Shared memory between processes on Windows: none yet. A region would have to be a file
//! mapping whose handle is duplicated into the peer (`DuplicateHandle` needs a handle to the
//! peer's process) or opened by a name a peer could guess; neither is done, so
//! [`Region::create`] fails and every caller takes its socket path (the share's writes travel
//! as messages), as on Unixes without `memfd`.
//!
//! [`receive`] is then a plain read: no peer can send a region.

use std::io::{self, Read};

use super::socket::Stream;

/// A handle of a shared-memory region, to hand to another process. None can exist here.
#[derive(Debug)]
pub(crate) struct RegionFd(std::convert::Infallible);

/// A shared mapping of a region. None can exist here.
#[derive(Debug)]
pub(crate) struct Region(std::convert::Infallible);

impl Region {
    /// The first byte of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        match self.0 {}
    }

    /// No shared regions on Windows yet: every caller takes its socket path.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<(Self, RegionFd)> {
        let _ = (name, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// No peer can hand a region over (none can be made).
    pub(crate) fn map_peer(fd: RegionFd, len: usize) -> io::Result<Self> {
        let _ = len;
        match fd.0 {}
    }
}

/// Writes `bytes` with a region attached; unreachable, since no region can be made.
pub(crate) fn send_with_fd(stream: &Stream, bytes: &[u8], fd: &RegionFd) -> io::Result<()> {
    let _ = (stream, bytes);
    match fd.0 {}
}

/// One read from `stream` into `buf`, waiting as a plain read does: the byte count (0 at the
/// end of the stream), and never a region.
pub(crate) fn receive(stream: &Stream, buf: &mut [u8]) -> io::Result<(usize, Option<RegionFd>)> {
    let mut stream = stream;
    Ok((stream.read(buf)?, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_region_can_be_made_so_callers_take_the_socket_path() {
        let error = Region::create("skp-test", 8192).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    }
}
