//! Words shared with one peer through a shared-memory region, and the read that takes such a
//! region handed over with a connection's bytes.
//!
//! One side creates a [`SharedWords`] page (on Linux a sealed `memfd`, on Windows a section,
//! see [`sys::shm`](crate::sys::shm)) and sends it with a frame ([`shm::send_with_fd`]); the
//! other reads the connection through a [`RegionReader`], which keeps the region that came
//! — beside the bytes on Linux, as a record frame ahead of them on Windows
//! ([`RegionReader::take_record`], which the frame loop asks about every frame) — and maps it
//! with [`SharedWords::attach`]. Then a word written on one side is read on the other with no
//! message and no system call: a queue reader's acknowledgements, the item a pool worker
//! holds. Where no region can be made (no `memfd`: macOS, the BSDs) [`SharedWords::create`]
//! fails and callers keep their message path; [`RegionReader`] is then a plain read.

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

    /// Keeps `region` in the slot; a second one is an error.
    fn keep(&mut self, region: RegionFd) -> io::Result<()> {
        if std::mem::replace(&mut self.received, true) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a second shared-memory region",
            ));
        }
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(region);
        Ok(())
    }
}

impl io::Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, region) = shm::receive(self.stream, buf)?;
        if let Some(region) = region {
            self.keep(region)?;
        }
        Ok(n)
    }
}

/// A reader of frames that may carry regions as records of their own (see the module's text):
/// the frame loop asks about each frame before the feature sees it.
pub(crate) trait FrameSource: io::Read {
    /// Whether `frame` was a record handing a region over (kept, and not the feature's);
    /// an error for a record that gives no region, or a second region: the connection ends.
    fn take_record(&mut self, frame: &[u8]) -> io::Result<bool>;
}

impl FrameSource for RegionReader<'_> {
    fn take_record(&mut self, frame: &[u8]) -> io::Result<bool> {
        match shm::take_record(self.stream, frame) {
            None => Ok(false),
            Some(region) => self.keep(region?).map(|()| true),
        }
    }
}

/// A plain stream takes no regions: every frame is the feature's.
impl FrameSource for &Stream {
    fn take_record(&mut self, _frame: &[u8]) -> io::Result<bool> {
        Ok(false)
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android", windows)))]
mod tests {
    use super::*;
    use crate::transport::frame::{self, FrameReader};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// The next frame that is the feature's, read through `reader` (records taken).
    fn next_frame(frames: &mut FrameReader, reader: &mut RegionReader<'_>) -> Vec<u8> {
        loop {
            let frame = frames.read_frame(reader).unwrap().unwrap().bytes().to_vec();
            if !reader.take_record(&frame).unwrap() {
                return frame;
            }
        }
    }

    #[test]
    fn a_word_written_on_one_side_is_read_on_the_other() {
        let (mine, fd) = SharedWords::create("skp-test").unwrap();
        let (a, b) = Stream::pair().unwrap();
        let hello = frame::encode_frame(&7u8, 1024).unwrap();
        shm::send_with_fd(&a, &hello, &fd).unwrap();
        drop(fd);
        b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let slot = Mutex::new(None);
        let mut reader = RegionReader::new(&b, &slot);
        assert_eq!(next_frame(&mut FrameReader::new(1024), &mut reader), [7]);
        let theirs = SharedWords::attach(slot.lock().unwrap().take().unwrap()).unwrap();
        mine.word(3).store(77, Ordering::SeqCst);
        assert_eq!(theirs.word(3).load(Ordering::SeqCst), 77);
        assert_eq!(theirs.word(0).load(Ordering::SeqCst), 0);
        // A slot past the page is its last word, never memory beyond it.
        mine.word(WORDS + 5).store(9, Ordering::SeqCst);
        assert_eq!(theirs.word(WORDS - 1).load(Ordering::SeqCst), 9);
    }

    #[test]
    fn a_second_region_ends_the_connection() {
        let (_one, first) = SharedWords::create("skp-test").unwrap();
        let (_two, second) = SharedWords::create("skp-test").unwrap();
        let (a, b) = Stream::pair().unwrap();
        let hello = frame::encode_frame(&7u8, 1024).unwrap();
        shm::send_with_fd(&a, &hello, &first).unwrap();
        shm::send_with_fd(&a, &hello, &second).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let slot = Mutex::new(None);
        let mut reader = RegionReader::new(&b, &slot);
        // One frame reader throughout: it may have read both sends at once.
        let mut frames = FrameReader::new(1024);
        assert_eq!(next_frame(&mut frames, &mut reader), [7]);
        let refused = loop {
            match frames.read_frame(&mut reader) {
                Err(e) => break e.to_string(),
                Ok(frame) => {
                    let frame = frame.unwrap().bytes().to_vec();
                    if let Err(e) = reader.take_record(&frame) {
                        break e.to_string();
                    }
                }
            }
        };
        assert!(
            refused.contains("a second shared-memory region"),
            "{refused}"
        );
    }
}
