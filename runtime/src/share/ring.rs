//! A single-producer ring of write frames in shared memory, one per process and share: the
//! fast path of fire-and-forget writes.
//!
//! A write copies its frame into the ring and publishes the new tail with a `SeqCst` store, so
//! it is visible to the coordinator before the call returns — no system call. The coordinator
//! drains every ring completely before it answers any call (and before it processes a socket
//! frame of the same process), which keeps the ordering guarantee of the socket path.
//!
//! When the coordinator has nothing to do it sets `sleeping` in every ring and checks them
//! once more before it blocks in `poll`; a writer that sees `sleeping` after publishing rings
//! the doorbell (a one-byte-body frame on its socket). Both sides use `SeqCst`, so one of them
//! always sees the other: the coordinator never sleeps on a published write.
//!
//! Layout: the tail (written by the producer) and the head (written by the coordinator) on
//! cache lines of their own, the sleeping flag on a third, then the data. Records are a `u32`
//! length and the frame, padded to 4 bytes; a record never wraps: at the end of the data, a
//! [`PAD`] length sends the reader back to the start.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of data in a ring.
pub(crate) const CAPACITY: usize = 1 << 20;
/// Bytes before the data.
const HEADER: usize = 256;
const TAIL: usize = 0;
const HEAD: usize = 64;
const SLEEPING: usize = 128;
/// A length that means "continue at the start".
const PAD: u32 = u32::MAX;
/// The largest frame that goes through the ring; larger ones take the socket.
pub(crate) const MAX_RECORD: usize = CAPACITY / 4;

/// A mapping of a ring file.
pub(crate) struct Ring {
    base: *mut u8,
}

// SAFETY: the mapping is plain shared memory; the header is accessed through atomics and the
// data by one producer and one consumer that never touch the same bytes at once.
unsafe impl Send for Ring {}
// SAFETY: as above; the producer side is used under the client's lock.
unsafe impl Sync for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base` came from a successful mmap of exactly this length.
        unsafe { libc::munmap(self.base.cast(), HEADER + CAPACITY) };
    }
}

fn round4(n: usize) -> usize {
    (n + 3) & !3
}

impl Ring {
    /// Creates a ring file in `dir` (readable only by this user) and maps it.
    pub(crate) fn create(dir: &Path) -> std::io::Result<(Self, PathBuf)> {
        let name = format!(
            "skp-ring-{}-{}",
            std::process::id(),
            crate::transport::rendezvous::random_hex(8)
                .map_err(|e| std::io::Error::other(e.to_string()))?
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        if let Err(error) = reserve(&file) {
            // No room (a full /dev/shm): no ring, so writes take the socket instead of
            // faulting on a page the file system cannot give.
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        let ring = Self::map(&file)?;
        Ok((ring, path))
    }

    /// Maps an existing ring file (the coordinator's side). The path comes from a peer, so it
    /// is trusted only as far as it is checked: a file named like a ring directly in
    /// [`ring_dir`], opened without following a symlink, a regular file of this user with one
    /// link and the ring's size.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = open_peer_ring(path)?;
        Self::map(&file)
    }

    fn map(file: &File) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of the whole file; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                HEADER + CAPACITY,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { base: base.cast() })
    }

    fn counter(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: the offset is inside the header, 8-aligned (the mapping is page-aligned),
        // and only ever accessed atomically.
        unsafe { &*(self.base.add(offset) as *const AtomicU64) }
    }

    fn sleeping_flag(&self) -> &AtomicU32 {
        // SAFETY: as for `counter`.
        unsafe { &*(self.base.add(SLEEPING) as *const AtomicU32) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data follows the header inside the mapping.
        unsafe { self.base.add(HEADER) }
    }

    /// Producer: appends `frame` if there is room; `Ok(true)` if the coordinator is asleep
    /// and must be woken, `Err(())` when the ring is full.
    pub(crate) fn push(&self, frame: &[u8]) -> Result<bool, ()> {
        let need = round4(4 + frame.len());
        let tail = self.counter(TAIL).load(Ordering::Relaxed);
        let head = self.counter(HEAD).load(Ordering::Acquire);
        let position = (tail % CAPACITY as u64) as usize;
        let to_end = CAPACITY - position;
        let pad = if to_end < need { to_end } else { 0 };
        let used = (tail - head) as usize;
        if used + pad + need > CAPACITY {
            return Err(());
        }
        let data = self.data();
        let mut at = position;
        if pad > 0 {
            // SAFETY: `at` is 4-aligned and at least 4 bytes before the end of the data, in
            // the free part of the ring.
            unsafe { (data.add(at) as *mut u32).write_unaligned(PAD) };
            at = 0;
        }
        // SAFETY: `need` bytes from `at` are inside the data and free (checked above).
        unsafe {
            (data.add(at) as *mut u32).write_unaligned(frame.len() as u32);
            std::ptr::copy_nonoverlapping(frame.as_ptr(), data.add(at + 4), frame.len());
        }
        self.counter(TAIL)
            .store(tail + (pad + need) as u64, Ordering::SeqCst);
        Ok(self.sleeping_flag().load(Ordering::SeqCst) != 0)
    }

    /// Producer: whether the coordinator has applied everything published.
    pub(crate) fn is_drained(&self) -> bool {
        self.counter(HEAD).load(Ordering::Acquire) == self.counter(TAIL).load(Ordering::Relaxed)
    }

    /// Consumer: passes every published frame to `apply` (copied into `scratch`), in order,
    /// then frees their room. Returns how many frames there were.
    pub(crate) fn drain(&self, scratch: &mut Vec<u8>, mut apply: impl FnMut(&[u8])) -> usize {
        let tail = self.counter(TAIL).load(Ordering::SeqCst);
        let mut head = self.counter(HEAD).load(Ordering::Relaxed);
        let mut frames = 0;
        let data = self.data();
        if tail < head || tail - head > CAPACITY as u64 {
            // Not what our producer writes: drop it rather than read stale bytes as records.
            self.counter(HEAD).store(tail, Ordering::Release);
            return 0;
        }
        while head < tail {
            let position = (head % CAPACITY as u64) as usize;
            // SAFETY: `position` is 4-aligned inside the data, in the published part.
            let len = unsafe { (data.add(position) as *const u32).read_unaligned() };
            if len == PAD {
                head += (CAPACITY - position) as u64;
                continue;
            }
            let len = len as usize;
            if position + 4 + len > CAPACITY || len > MAX_RECORD {
                // A corrupt ring (not written by our producer): drop what is left.
                head = tail;
                break;
            }
            scratch.clear();
            // SAFETY: `len` bytes after the length are inside the data and published.
            unsafe {
                scratch.extend_from_slice(std::slice::from_raw_parts(data.add(position + 4), len));
            }
            apply(scratch);
            frames += 1;
            head += round4(4 + len) as u64;
        }
        self.counter(HEAD).store(head, Ordering::Release);
        frames
    }

    /// Producer: whether the coordinator announced that it sleeps (and needs the doorbell).
    pub(crate) fn consumer_sleeping(&self) -> bool {
        self.sleeping_flag().load(Ordering::SeqCst) != 0
    }

    /// Consumer: announces (or withdraws) that it is about to block.
    pub(crate) fn set_sleeping(&self, sleeping: bool) {
        self.sleeping_flag()
            .store(u32::from(sleeping), Ordering::SeqCst);
    }

    /// Consumer: whether anything is published and not yet drained.
    pub(crate) fn has_records(&self) -> bool {
        self.counter(TAIL).load(Ordering::SeqCst) != self.counter(HEAD).load(Ordering::Relaxed)
    }
}

/// Gives the file its whole size with the blocks behind it, so no later write into the
/// mapping can meet a full file system.
fn reserve(file: &File) -> std::io::Result<()> {
    let len = (HEADER + CAPACITY) as libc::off_t;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a plain call on an open descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    file.set_len(len as u64)
}

/// Opens a ring file named by a peer, refusing anything but one of our own rings.
fn open_peer_ring(path: &Path) -> std::io::Result<File> {
    let refuse = |why: &str| Err(std::io::Error::other(format!("not a write ring: {why}")));
    let named_like_a_ring = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("skp-ring-"));
    if !named_like_a_ring || path.parent() != Some(ring_dir().as_path()) {
        return refuse("outside the ring directory");
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let metadata = file.metadata()?;
    // SAFETY: a plain query of this process's effective user.
    let user = unsafe { libc::geteuid() };
    if !metadata.file_type().is_file() {
        return refuse("not a regular file");
    }
    if std::os::unix::fs::MetadataExt::uid(&metadata) != user {
        return refuse("owned by another user");
    }
    if std::os::unix::fs::MetadataExt::nlink(&metadata) != 1 {
        return refuse("it has other names");
    }
    if metadata.len() != (HEADER + CAPACITY) as u64 {
        return refuse("the wrong size");
    }
    Ok(file)
}

/// Where ring files go: `/dev/shm` when there is one (memory only), else the temp directory.
pub(crate) fn ring_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_through_in_order_across_the_wrap() {
        let (producer, path) = Ring::create(&ring_dir()).unwrap();
        let consumer = Ring::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut scratch = Vec::new();
        let mut next = 0u32;
        let mut seen = 0u32;
        // Enough frames of odd sizes to wrap several times.
        for round in 0..50 {
            loop {
                let frame = vec![(next % 251) as u8; 1000 + (next as usize % 7)];
                match producer.push(&frame) {
                    Ok(_) => next += 1,
                    Err(()) => break,
                }
            }
            consumer.drain(&mut scratch, |frame| {
                assert_eq!(frame.len(), 1000 + (seen as usize % 7), "round {round}");
                assert!(frame.iter().all(|&b| b == (seen % 251) as u8));
                seen += 1;
            });
            assert!(producer.is_drained());
        }
        assert_eq!(seen, next);
        assert!(next > 3 * (CAPACITY / 1008) as u32);
    }

    #[test]
    fn a_path_that_is_not_one_of_our_rings_is_refused_and_left_alone() {
        let dir = ring_dir();
        let outside = std::env::temp_dir().join(format!("skp-ring-outside-{}", std::process::id()));
        std::fs::write(&outside, vec![0u8; HEADER + CAPACITY]).unwrap();
        assert!(
            Ring::open(&outside).is_err(),
            "a file outside the ring directory"
        );
        let link = dir.join(format!("skp-ring-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(Ring::open(&link).is_err(), "a symlink");
        std::fs::remove_file(&link).unwrap();
        let other = dir.join(format!("not-a-ring-{}", std::process::id()));
        std::fs::write(&other, vec![0u8; HEADER + CAPACITY]).unwrap();
        assert!(Ring::open(&other).is_err(), "a file not named like a ring");
        assert!(
            outside.exists() && other.exists(),
            "a refused path was removed"
        );
        std::fs::remove_file(&outside).unwrap();
        std::fs::remove_file(&other).unwrap();
    }

    #[test]
    fn the_producer_sees_a_sleeping_consumer() {
        let (producer, path) = Ring::create(&ring_dir()).unwrap();
        let consumer = Ring::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(producer.push(b"a"), Ok(false));
        consumer.set_sleeping(true);
        assert_eq!(producer.push(b"b"), Ok(true));
        assert!(consumer.has_records());
    }
}
