//! Shared memory between processes on Windows.
//!
//! A [`Region`] is a section backed by the paging file (`CreateFileMappingW` with
//! `SEC_COMMIT`: its memory is committed up front, so a write into the mapping never meets a
//! full disk), mapped with `MapViewOfFile`; no name refers to it, so nothing is left behind
//! and no other process can open it by guessing.
//!
//! Named pipes carry no handles beside their bytes, so [`send_with_fd`] writes a *record
//! frame* ahead of the frame it goes with: the section handle's value in the sender's
//! process. The receiver's frame loop hands every frame to [`take_record`] first; for a
//! record it duplicates that handle from the peer's process into its own
//! (`DuplicateHandle`), the peer's pid taken from the pipe, never from the peer. A lying
//! peer can thus make the receiver take only a handle of the peer's own — never one of the
//! receiver's — and [`Region::map_peer`] maps it only once it proves to be a committed
//! section of the paging file at least as large as expected (a view of an uncommitted page
//! would fault on the first touch, and one of a file whenever the file cannot be read back). The sender keeps its handle open as long as its own mapping lives, so the
//! value it sent stays valid while the receiver can still need it.
//!
//! [`receive`] is a plain read: the handle travels in the frames.

use std::io::{self, Read, Write};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{
    CloseHandle, DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, FILE_MAP_READ, FILE_MAP_WRITE, MEM_COMMIT, MEMORY_BASIC_INFORMATION,
    MEMORY_MAPPED_VIEW_ADDRESS, MapViewOfFile, PAGE_READWRITE, SEC_COMMIT, UnmapViewOfFile,
    VirtualQuery,
};
use windows_sys::Win32::System::ProcessStatus::K32GetMappedFileNameW;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcess, PROCESS_DUP_HANDLE};

use super::socket::Stream;

/// The first bytes of a record frame's body. `FF FF` opens no message of any feature (as a
/// postcard varint it is an enum tag no enum has), so a record is never taken for one.
const MAGIC: [u8; 8] = [0xFF, 0xFF, b's', b'k', b'p', b'r', b'e', b'g'];
/// A record's body: the magic, then the handle's value (u64, little-endian).
const RECORD_LEN: usize = MAGIC.len() + 8;

/// A section handle of a shared-memory region, to hand to another process. The creator's
/// mapping shares it, so that it stays open while that mapping lives.
#[derive(Debug)]
pub(crate) struct RegionFd(Arc<OwnedHandle>);

impl RegionFd {
    /// Wraps any open file, as a lying peer could send one.
    #[cfg(test)]
    pub(crate) fn from_file(file: std::fs::File) -> Self {
        Self(Arc::new(OwnedHandle::from(file)))
    }

    /// Another handle of the same region, to map it twice in one process.
    #[cfg(test)]
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(Self(Arc::clone(&self.0)))
    }
}

/// A shared mapping of a region, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    base: *mut u8,
    /// The section: kept open so that a handle value sent to a peer stays valid.
    _section: Arc<OwnedHandle>,
}

// SAFETY: the view is plain shared memory owned by this value; what is stored in it is the
// user's (`Ring`'s, `SharedWords`') business.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` itself never reads or writes the memory.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        let view = MEMORY_MAPPED_VIEW_ADDRESS {
            Value: self.base.cast(),
        };
        // SAFETY: `base` came from a successful MapViewOfFile that nothing else unmaps.
        unsafe { UnmapViewOfFile(view) };
    }
}

impl Region {
    /// The first byte of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    /// Creates a region of `len` bytes, zeroed and committed, and maps it. `name` is for
    /// debugging on Linux only (a Windows section has none). Fails when the system cannot
    /// commit the memory; callers then take their socket path.
    pub(crate) fn create(name: &str, len: usize) -> io::Result<(Self, RegionFd)> {
        let _ = name;
        let size = u64::try_from(len).map_err(io::Error::other)?;
        // SAFETY: a section of the paging file, not inheritable, without a name; the size
        // halves come from `size`.
        let raw = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE | SEC_COMMIT,
                (size >> 32) as u32,
                size as u32,
                std::ptr::null(),
            )
        };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh handle this process owns and nothing else closes.
        let section = Arc::new(unsafe { OwnedHandle::from_raw_handle(raw) });
        let region = Self::map(Arc::clone(&section), len)?;
        Ok((region, RegionFd(section)))
    }

    /// Maps a region a peer handed over, once it proved to be a section of the paging file of
    /// at least `len` bytes whose pages are committed (so no touch of the mapping can fault).
    pub(crate) fn map_peer(fd: RegionFd, len: usize) -> io::Result<Self> {
        let region = Self::map(fd.0, len)
            .map_err(|e| io::Error::other(format!("not a shared region: {e}")))?;
        // SAFETY: an all-zero MEMORY_BASIC_INFORMATION is valid, to be overwritten.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, exclusively borrowed buffer of the size given.
        let got = unsafe {
            VirtualQuery(
                region.base.cast(),
                &mut info,
                size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        if got == 0 || info.State != MEM_COMMIT || info.RegionSize < len {
            return Err(io::Error::other(
                "not a shared region: its pages are not all committed",
            ));
        }
        if region.file_name_len() != 0 {
            return Err(io::Error::other("not a shared region: a view of a file"));
        }
        Ok(region)
    }

    /// The length of the name of the file this view maps; 0 for the paging file.
    fn file_name_len(&self) -> u32 {
        let mut name = [0u16; 260];
        // SAFETY: `name` is a valid buffer of the length given; the address is this view's.
        unsafe {
            K32GetMappedFileNameW(
                GetCurrentProcess(),
                self.base.cast(),
                name.as_mut_ptr(),
                name.len() as u32,
            )
        }
    }

    fn map(section: Arc<OwnedHandle>, len: usize) -> io::Result<Self> {
        // SAFETY: a view of an open section; fails when the section is smaller than `len`
        // or is no section at all.
        let view = unsafe {
            MapViewOfFile(
                section.as_raw_handle(),
                FILE_MAP_READ | FILE_MAP_WRITE,
                0,
                0,
                len,
            )
        };
        if view.Value.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: view.Value.cast(),
            _section: section,
        })
    }
}

/// Writes all of `bytes` on `stream` (blocking), preceded by a record frame that hands `fd`
/// over (see the module's text).
pub(crate) fn send_with_fd(stream: &Stream, bytes: &[u8], fd: &RegionFd) -> io::Result<()> {
    let value = fd.0.as_raw_handle() as usize as u64;
    let mut out = Vec::with_capacity(4 + RECORD_LEN + bytes.len());
    out.extend_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(bytes);
    let mut stream = stream;
    stream.write_all(&out)
}

/// One read from `stream` into `buf`, waiting as a plain read does: the byte count (0 at the
/// end of the stream), and never a region (those come as record frames, [`take_record`]).
pub(crate) fn receive(stream: &Stream, buf: &mut [u8]) -> io::Result<(usize, Option<RegionFd>)> {
    let mut stream = stream;
    Ok((stream.read(buf)?, None))
}

/// Whether `frame` (a frame's body read from `stream`) is a record handing a region over:
/// `None` for any other frame; else the region, duplicated from the peer's process into this
/// one, or why it could not be.
pub(crate) fn take_record(stream: &Stream, frame: &[u8]) -> Option<io::Result<RegionFd>> {
    let value = frame.strip_prefix(&MAGIC)?;
    let value: [u8; 8] = match value.try_into() {
        Ok(value) => value,
        Err(_) => return Some(Err(io::Error::other("a region record of the wrong length"))),
    };
    let value = u64::from_le_bytes(value);
    Some(stream.peer_pid().and_then(|pid| duplicate_from(pid, value)))
}

/// Duplicates handle `value` of process `pid` into this process.
fn duplicate_from(pid: u32, value: u64) -> io::Result<RegionFd> {
    let value = usize::try_from(value).map_err(io::Error::other)? as HANDLE;
    // SAFETY: a plain call; the handle is closed below.
    let process = unsafe { OpenProcess(PROCESS_DUP_HANDLE, 0, pid) };
    if process.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut mine: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is open; `mine` is written on success. A wrong `value` fails or
    // yields a handle to some object of the peer's, which `map_peer` then refuses.
    let ok = unsafe {
        DuplicateHandle(
            process,
            value,
            GetCurrentProcess(),
            &mut mine,
            0,
            0,
            DUPLICATE_SAME_ACCESS,
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: `process` came from OpenProcess above and is closed once.
    unsafe { CloseHandle(process) };
    if ok == 0 || mine.is_null() {
        return Err(error);
    }
    // SAFETY: a fresh handle of this process that nothing else closes.
    Ok(RegionFd(Arc::new(unsafe {
        OwnedHandle::from_raw_handle(mine)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of the record frame at the front of what `send_with_fd` wrote.
    fn record_of(written: &[u8]) -> &[u8] {
        let len = u32::from_le_bytes(written[..4].try_into().unwrap()) as usize;
        &written[4..4 + len]
    }

    #[test]
    fn a_region_travels_as_a_record_and_maps_on_the_other_side() {
        let (region, fd) = Region::create("skp-test", 8192).unwrap();
        // SAFETY: the first byte of a fresh mapping of 8192 bytes.
        unsafe { region.as_ptr().write(42) };
        let (a, b) = Stream::pair().unwrap();
        send_with_fd(&a, b"hello", &fd).unwrap();
        drop(fd);
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 4 + RECORD_LEN + 5 {
            let (n, none) = receive(&b, &mut buf[got..]).unwrap();
            assert!(none.is_none() && n > 0);
            got += n;
        }
        assert_eq!(&buf[4 + RECORD_LEN..got], b"hello");
        let fd = take_record(&b, record_of(&buf)).unwrap().unwrap();
        let mapped = Region::map_peer(fd, 8192).unwrap();
        // SAFETY: the first byte of the same memory, mapped again.
        assert_eq!(unsafe { mapped.as_ptr().read() }, 42);
        // SAFETY: as above; the write is seen through the creator's mapping.
        unsafe { mapped.as_ptr().add(8191).write(7) };
        assert_eq!(unsafe { region.as_ptr().add(8191).read() }, 7);
    }

    #[test]
    fn a_record_that_names_no_section_of_the_size_is_refused() {
        let (_a, b) = Stream::pair().unwrap();
        // Too small a section.
        let (_small, fd) = Region::create("skp-test", 4096).unwrap();
        let value = fd.0.as_raw_handle() as usize as u64;
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&value.to_le_bytes());
        let fd = take_record(&b, &record).unwrap().unwrap();
        assert!(
            Region::map_peer(fd, 1 << 20).is_err(),
            "a section too small"
        );
        // A section of a file rather than of the paging file.
        let path = std::env::temp_dir().join(format!("skp-shm-test-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(8192).unwrap();
        // SAFETY: a section of an open file, not inheritable, without a name.
        let section = unsafe {
            CreateFileMappingW(
                file.as_raw_handle(),
                std::ptr::null(),
                PAGE_READWRITE,
                0,
                8192,
                std::ptr::null(),
            )
        };
        assert!(!section.is_null());
        // SAFETY: a fresh handle this test owns.
        let section = unsafe { OwnedHandle::from_raw_handle(section) };
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&(section.as_raw_handle() as usize as u64).to_le_bytes());
        let fd = take_record(&b, &record).unwrap().unwrap();
        let refused = Region::map_peer(fd, 8192).unwrap_err().to_string();
        assert!(refused.contains("a view of a file"), "{refused}");
        drop((section, file));
        let _ = std::fs::remove_file(&path);
        // A handle that is no section: a file's (the peer is this process here).
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let value = file.as_raw_handle() as usize as u64;
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&value.to_le_bytes());
        if let Ok(fd) = take_record(&b, &record).unwrap() {
            assert!(Region::map_peer(fd, 4096).is_err(), "not a section");
        }
        // A value that is no handle at all, and a record of the wrong length.
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&0x7fff_fff0u64.to_le_bytes());
        assert!(take_record(&b, &record).unwrap().is_err());
        assert!(take_record(&b, &MAGIC).unwrap().is_err());
        // Any other frame is no record.
        assert!(take_record(&b, b"\x01\x02").is_none());
    }
}
