//! Words shared with one peer through a shared-memory region, and the read that takes such a
//! region handed over with a connection's bytes.
//!
//! One side creates a [`SharedWords`] page (on Linux a sealed `memfd`, see
//! [`sys::shm`](crate::sys::shm)) and sends its descriptor with a frame
//! ([`shm::send_with_fd`]); the other reads the connection through a [`RegionReader`], which
//! keeps the descriptor that came with the bytes, and maps it with [`SharedWords::attach`].
//! Then a word written on one side is read on the other with no message and no system call:
//! a queue reader's acknowledgements, the item a pool worker holds. Where no region can be
//! made (no `memfd`, Windows) [`SharedWords::create`] fails and callers keep their message
//! path; [`RegionReader`] is then a plain read.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use crate::sys::Stream;
use crate::sys::shm::{self, Region, RegionFd};

/// The region's size: one page.
const LEN: usize = 4096;
/// Each word sits on a cache line of its own, so the two sides' writes never share one.
const LINE: usize = 64;
/// How many words a page holds.
pub(crate) const WORDS: usize = LEN / LINE;

/// A page of atomic words shared with one peer (either side's mapping).
#[derive(Debug)]
pub(crate) struct SharedWords {
    region: Region,
}

impl SharedWords {
    /// Creates a page, zeroed, named `name` for debugging only (the writer's side); fails
    /// where there is no shared memory.
    pub(crate) fn create(name: &str) -> io::Result<(Self, RegionFd)> {
        let (region, fd) = Region::create(name, LEN)?;
        Ok((Self { region }, fd))
    }

    /// Maps a page a peer handed over, once it proved to be a sealed region of the right size.
    /// What is read there is only what the peer says: the reader trusts it no further than a
    /// message from the same peer.
    pub(crate) fn attach(fd: RegionFd) -> io::Result<Self> {
        Ok(Self {
            region: Region::map_peer(fd, LEN)?,
        })
    }

    /// Word `slot` (below [`WORDS`]; a larger one is the last word).
    pub(crate) fn word(&self, slot: usize) -> &AtomicU64 {
        let offset = slot.min(WORDS - 1) * LINE;
        // SAFETY: the offset is inside the mapping of `LEN` bytes, 8-aligned (the mapping is
        // page-aligned), and every word is only ever accessed atomically, on both sides.
        unsafe { &*(self.region.as_ptr().add(offset) as *const AtomicU64) }
    }
}

/// Reads a connection that may hand over one region with its bytes: the region is kept in
/// `slot` for whoever needs it; a second one is an error, which ends the connection. Where no
/// region can be made this is a plain read.
pub(crate) struct RegionReader<'a> {
    stream: &'a Stream,
    slot: &'a Mutex<Option<RegionFd>>,
    received: bool,
}

impl<'a> RegionReader<'a> {
    /// Reads `stream`, keeping a region that comes in `slot`.
    pub(crate) fn new(stream: &'a Stream, slot: &'a Mutex<Option<RegionFd>>) -> Self {
        Self {
            stream,
            slot,
            received: false,
        }
    }
}

impl io::Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, region) = shm::receive(self.stream, buf)?;
        if let Some(region) = region {
            if std::mem::replace(&mut self.received, true) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a second shared-memory region",
                ));
            }
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(region);
        }
        Ok(n)
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_word_written_on_one_side_is_read_on_the_other() {
        let (mine, fd) = SharedWords::create("skp-test").unwrap();
        let (a, b) = Stream::pair().unwrap();
        shm::send_with_fd(&a, b"hi", &fd).unwrap();
        let slot = Mutex::new(None);
        let mut reader = RegionReader::new(&b, &slot);
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 2);
        let theirs = SharedWords::attach(slot.lock().unwrap().take().unwrap()).unwrap();
        mine.word(3).store(77, Ordering::SeqCst);
        assert_eq!(theirs.word(3).load(Ordering::SeqCst), 77);
        assert_eq!(theirs.word(0).load(Ordering::SeqCst), 0);
        // A slot past the page is its last word, never memory beyond it.
        mine.word(WORDS + 5).store(9, Ordering::SeqCst);
        assert_eq!(theirs.word(WORDS - 1).load(Ordering::SeqCst), 9);
    }
}
