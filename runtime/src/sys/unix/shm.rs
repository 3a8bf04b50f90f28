//! Shared memory between processes, and the socket calls of a shared value's coordinator.
//!
//! A [`Region`] is created by the process that writes into it: on Linux a sealed `memfd`
//! (no name in any file system, so nothing can be left behind or named by a peer) with its
//! memory reserved up front, so a write into the mapping never meets a full file system
//! (SIGBUS). Its [`RegionFd`] travels to the other process over a connection
//! ([`send_with_fd`], [`receive`]: `SCM_RIGHTS`); the receiver maps it only once the
//! descriptor proves to be a region of the expected size that can no longer shrink
//! ([`Region::map_peer`]). Elsewhere there is no `memfd`: [`Region::create`] fails and callers
//! take their socket path.
//!
//! [`receive`] is the one read beyond what [`Stream`] offers: a blocking read that takes a
//! descriptor sent with the bytes (a server's reader thread uses it for connections that may
//! hand over a region).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::socket::Stream;

/// A descriptor of a shared-memory region, to hand to another process.
#[derive(Debug)]
pub(crate) struct RegionFd(OwnedFd);

impl RegionFd {
    /// Wraps any open file, as a lying peer could send one.
    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    pub(crate) fn from_file(file: std::fs::File) -> Self {
        Self(OwnedFd::from(file))
    }

    /// Another descriptor of the same region, to map it twice in one process.
    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(Self)
    }
}

/// A shared mapping of a region, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; what is stored in it is
// the user's (`Ring`'s) business.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` itself never reads or writes the memory.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base` came from a successful mmap of exactly `len` bytes.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl Region {
    /// The first byte of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Creates a region of `len` bytes, named `name` for debugging only, with its memory
    /// reserved and its size sealed, and maps it. Fails where there is no `memfd`, and when
    /// the memory cannot be reserved (`ENOSPC`, a memory limit).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn create(name: &str, len: usize) -> io::Result<(Self, RegionFd)> {
        let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        let fd = owned(raw)?;
        let size = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a plain call on an open descriptor.
        let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, size) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: a plain call on an open descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let region = Self::map(fd.as_raw_fd(), len)?;
        Ok((region, RegionFd(fd)))
    }

    /// No `memfd` here: every caller takes its socket path.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn create(name: &str, len: usize) -> io::Result<(Self, RegionFd)> {
        let _ = (name, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Maps a region a peer handed over, once it proved to be a regular file of exactly `len`
    /// bytes whose size is sealed against shrinking (only a `memfd` can be sealed so): the
    /// peer can then never make a page of the mapping vanish under the reader (SIGBUS).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn map_peer(fd: RegionFd, len: usize) -> io::Result<Self> {
        let raw = fd.0.as_raw_fd();
        let refuse = |why: &str| Err(io::Error::other(format!("not a shared region: {why}")));
        // SAFETY: an all-zero stat is a valid value to be overwritten by fstat.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is a valid, exclusively borrowed buffer for the call.
        if unsafe { libc::fstat(raw, &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return refuse("not a regular file");
        }
        if u64::try_from(stat.st_size).ok() != u64::try_from(len).ok() {
            return refuse("the wrong size");
        }
        // SAFETY: a plain call on an open descriptor; fails for files that cannot be sealed.
        let seals = unsafe { libc::fcntl(raw, libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return refuse("its size is not sealed");
        }
        Self::map(raw, len)
    }

    /// No `memfd` here, so no peer has one to hand over.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn map_peer(fd: RegionFd, len: usize) -> io::Result<Self> {
        let _ = (fd, len);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    fn map(fd: RawFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the descriptor; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: base.cast(),
            len,
        })
    }
}

#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn owned(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor this process owns and nothing else closes.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

#[cfg(any(target_os = "linux", target_os = "android"))]
const RECEIVE_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RECEIVE_FLAGS: libc::c_int = 0;

/// Room for one descriptor's control message, aligned for `cmsghdr`.
type ControlBuffer = [u64; 4];

/// Writes all of `bytes` on `stream` (blocking), with `fd` attached to the first byte.
pub(crate) fn send_with_fd(stream: &Stream, bytes: &[u8], fd: &RegionFd) -> io::Result<()> {
    let raw: RawFd = fd.0.as_raw_fd();
    let mut control: ControlBuffer = [0; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point into live buffers.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    message.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as _;
    // SAFETY: the control buffer is large enough for one header with one descriptor (checked
    // by the size of `ControlBuffer` against CMSG_SPACE above), and aligned for `cmsghdr`.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        if header.is_null() || message.msg_controllen as usize > size_of::<ControlBuffer>() {
            return Err(io::Error::other("no room for a control message"));
        }
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        libc::CMSG_DATA(header).cast::<RawFd>().write_unaligned(raw);
    }
    let sent = loop {
        // SAFETY: `message` describes live buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &message, SEND_FLAGS) };
        match usize::try_from(n) {
            Ok(n) => break n,
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(io::Error::last_os_error()),
        }
    };
    // The descriptor went with the first byte; the rest is plain data.
    let mut rest = bytes.get(sent..).unwrap_or_default();
    let mut stream = stream;
    while !rest.is_empty() {
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read from `stream` into `buf`, waiting as a plain read does (the stream's mode and
/// timeout apply), taking a descriptor sent with the bytes: the byte count (0 at the end of
/// the stream) and the descriptor, if one came. More than one descriptor, or a control message
/// of another kind, is an [`io::ErrorKind::InvalidData`] error (whatever came was closed).
pub(crate) fn receive(stream: &Stream, buf: &mut [u8]) -> io::Result<(usize, Option<RegionFd>)> {
    let mut control: ControlBuffer = [0; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point into live buffers.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of::<ControlBuffer>() as _;
    let n = loop {
        // SAFETY: `message` describes live, writable buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut message, RECEIVE_FLAGS) };
        match usize::try_from(n) {
            Ok(n) => break n,
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => {}
                e => return Err(e),
            },
        }
    };
    match take_descriptors(&message) {
        Ok(fd) => Ok((n.min(buf.len()), fd)),
        Err(()) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more than one descriptor, or another control message",
        )),
    }
}

/// Whether `frame` is a record handing a region over: never here, where a region travels
/// beside the bytes ([`receive`]); the frame is the feature's to judge.
pub(crate) fn take_record(stream: &Stream, frame: &[u8]) -> Option<io::Result<RegionFd>> {
    let _ = (stream, frame);
    None
}

/// The one descriptor a received message carried; every descriptor found is owned (and so
/// closed) whatever happens. `Err` for anything but at most one descriptor in one message.
fn take_descriptors(message: &libc::msghdr) -> Result<Option<RegionFd>, ()> {
    let mut found = Vec::new();
    let mut other = message.msg_flags & libc::MSG_CTRUNC != 0;
    // SAFETY: the control buffer was filled by recvmsg; the CMSG macros walk it within
    // `msg_controllen`, and each SCM_RIGHTS payload holds `(len - CMSG_LEN(0)) / 4` fds.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let bytes =
                    ((*header).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for i in 0..bytes / size_of::<RawFd>() {
                    if let Ok(fd) = owned(data.add(i).read_unaligned()) {
                        found.push(fd);
                    }
                }
            } else {
                other = true;
            }
            header = libc::CMSG_NXTHDR(message, header);
        }
    }
    if other || found.len() > 1 {
        return Err(());
    }
    Ok(found.pop().map(RegionFd))
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn a_region_travels_with_its_bytes_and_maps_on_the_other_side() {
        let (region, fd) = Region::create("skp-test", 8192).unwrap();
        // SAFETY: the first byte of a fresh mapping of 8192 bytes.
        unsafe { region.as_ptr().write(42) };
        let (a, b) = Stream::pair().unwrap();
        send_with_fd(&a, b"hello", &fd).unwrap();
        let mut buf = [0u8; 16];
        let (n, Some(fd)) = receive(&b, &mut buf).unwrap() else {
            panic!("no descriptor came");
        };
        assert_eq!(&buf[..n], b"hello");
        let mapped = Region::map_peer(fd, 8192).unwrap();
        // SAFETY: the first byte of the same memory, mapped again.
        assert_eq!(unsafe { mapped.as_ptr().read() }, 42);
    }

    #[test]
    fn a_region_of_the_wrong_size_or_unsealed_is_refused() {
        let (_region, fd) = Region::create("skp-test", 8192).unwrap();
        assert!(Region::map_peer(fd, 4096).is_err(), "the wrong size");
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let fd = RegionFd::from_file(file);
        assert!(Region::map_peer(fd, 4096).is_err(), "an ordinary file");
    }
}
