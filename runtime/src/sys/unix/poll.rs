//! The one wait on many streams: `poll(2)` with its `EINTR` handling in one place. Every other
//! wait of the runtime on a descriptor (room to write, a hang-up) is built on [`poll_fds`].
//!
//! A Windows backend cannot wait on named pipes this way; it will answer the same question
//! from its reader threads. Callers therefore only ask "which of these can be read, and which
//! has hung up", never for descriptors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// Something [`wait_readable`] can watch: a listener (readable when a connection waits to
/// be accepted) or a stream (readable when bytes or the end of the stream wait). Made with
/// `Source::from(&listener)` or `Source::from(&stream)`.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a>(pub(super) BorrowedFd<'a>);

/// What [`wait_readable`] found on one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// A read (or accept) will not block: data, a connection, the end of the stream or an
    /// error waits.
    pub(crate) readable: bool,
    /// The peer shut its writing side or the connection broke.
    pub(crate) hung_up: bool,
}

/// The peer shut its writing side (Linux reports it apart from a full hang-up).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) const PEER_SHUT_WRITE: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) const PEER_SHUT_WRITE: libc::c_short = 0;

/// Both directions are gone, or the descriptor failed.
pub(super) const BROKEN: libc::c_short = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

/// Waits until at least one of `sources` is readable or hung up, for at most `timeout`
/// (`None`: without limit); returns one [`Readiness`] per source, in order. A signal that
/// interrupts the wait does not end it early.
pub(crate) fn wait_readable(
    sources: &[Source<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<Readiness>> {
    let mut fds: Vec<libc::pollfd> = sources
        .iter()
        .map(|source| pollfd(source.0.as_raw_fd(), libc::POLLIN | PEER_SHUT_WRITE))
        .collect();
    poll_fds(&mut fds, timeout)?;
    Ok(fds
        .iter()
        .map(|fd| Readiness {
            readable: fd.revents & (libc::POLLIN | BROKEN | PEER_SHUT_WRITE) != 0,
            hung_up: fd.revents & (BROKEN | PEER_SHUT_WRITE) != 0,
        })
        .collect())
}

/// A pollfd asking for `events` on `fd`.
pub(super) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll` on `fds` for at most `timeout`, resumed after a signal with the time left; returns
/// how many fired (0: the time ran out).
pub(super) fn poll_fds(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut left = timeout;
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of `count` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, millis(left)) };
        if let Ok(ready) = usize::try_from(ready) {
            return Ok(ready);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
        // An unlimited wait too long for the clock stays unlimited.
        left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    }
}

/// `poll`'s timeout for `timeout`: `-1` without limit, and a sub-millisecond rest rounded up
/// so that a short wait waits instead of spinning.
fn millis(timeout: Option<Duration>) -> libc::c_int {
    let Some(timeout) = timeout else {
        return -1;
    };
    let whole = timeout.as_millis();
    let rounded = if Duration::from_millis(u64::try_from(whole).unwrap_or(u64::MAX)) < timeout {
        whole.saturating_add(1)
    } else {
        whole
    };
    libc::c_int::try_from(rounded).unwrap_or(libc::c_int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::unix::socket::Stream;
    use std::io::Write;

    #[test]
    fn a_sub_millisecond_wait_is_rounded_up_and_none_is_unlimited() {
        assert_eq!(millis(None), -1);
        assert_eq!(millis(Some(Duration::ZERO)), 0);
        assert_eq!(millis(Some(Duration::from_micros(10))), 1);
        assert_eq!(millis(Some(Duration::from_millis(7))), 7);
        assert_eq!(millis(Some(Duration::MAX)), libc::c_int::MAX);
    }

    #[test]
    fn reports_which_stream_is_readable_and_which_hung_up() {
        let (a, mut b) = Stream::pair().unwrap();
        let (c, d) = Stream::pair().unwrap();
        let sources = [Source::from(&a), Source::from(&c)];
        let idle = wait_readable(&sources, Some(Duration::ZERO)).unwrap();
        assert_eq!(idle, vec![Readiness::default(); 2]);
        b.write_all(b"x").unwrap();
        drop(d);
        let ready = wait_readable(&sources, Some(Duration::from_secs(5))).unwrap();
        assert!(ready[0].readable && !ready[0].hung_up, "{ready:?}");
        assert!(ready[1].readable && ready[1].hung_up, "{ready:?}");
    }
}
