//! A single-producer ring of write frames in shared memory, one per process and share: the
//! fast path of fire-and-forget writes.
//!
//! A write copies its frame into the ring and publishes the new tail with a `SeqCst` store, so
//! it is visible to the coordinator before the call returns — no system call. The coordinator
//! drains every ring completely before it applies any call, which gives the ordering
//! guarantee: a read observes every write that returned before it.
//!
//! When the coordinator has nothing to do it sets `sleeping` in every ring and checks them
//! once more before it blocks waiting for a message; a writer that sees `sleeping` after
//! publishing sends a wake-up (a `Wake` frame on its socket, which the connection's reader
//! thread passes on as a message). Both sides use `SeqCst`, so one of them always sees the
//! other: the coordinator never sleeps on a published write.
//!
//! Layout: the tail (written by the producer) and the head (written by the coordinator) on
//! cache lines of their own, the sleeping flag on a third, then the data. Records are a `u32`
//! length and the frame, padded to 4 bytes; a record never wraps: at the end of the data, a
//! [`PAD`] length sends the reader back to the start.
//!
//! The producer is another process, so the consumer trusts nothing it reads from the shared
//! memory: it keeps its own head, and checks the published tail and every length against it
//! and the ring's size before it reads a byte; a ring that does not add up is [`Corrupt`].
//! The memory itself is a sealed region the producer created and handed over
//! ([`crate::sys::shm`]): no file names it, and it cannot shrink under the consumer.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::shm::{Region, RegionFd};

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

/// The ring's records do not add up: not what our producer writes. The consumer stops
/// reading the ring (and drops its peer) rather than read anything outside its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a corrupt write ring")]
pub(crate) struct Corrupt;

/// A mapping of a ring (either side).
pub(crate) struct Ring {
    region: Region,
    /// The consumer's own head. The shared one is written for the producer, never read back:
    /// the producer could have changed it.
    consumed: AtomicU64,
}

fn round4(n: usize) -> usize {
    (n + 3) & !3
}

impl Ring {
    /// Creates a ring (the producer's side): fails where there is no shared memory to hand
    /// over, or none to reserve (then writes take the socket instead of faulting later).
    pub(crate) fn create() -> std::io::Result<(Self, RegionFd)> {
        let (region, fd) = Region::create("skp-ring", HEADER + CAPACITY)?;
        Ok((Self::over(region), fd))
    }

    /// Maps a ring a peer handed over (the coordinator's side), once it proved to be a sealed
    /// region of the ring's size.
    pub(crate) fn attach(fd: RegionFd) -> std::io::Result<Self> {
        Ok(Self::over(Region::map_peer(fd, HEADER + CAPACITY)?))
    }

    fn over(region: Region) -> Self {
        Self {
            region,
            consumed: AtomicU64::new(0),
        }
    }

    fn counter(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: the offset is inside the header, 8-aligned (the mapping is page-aligned),
        // and only ever accessed atomically.
        unsafe { &*(self.region.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn sleeping_flag(&self) -> &AtomicU32 {
        // SAFETY: as for `counter`.
        unsafe { &*(self.region.as_ptr().add(SLEEPING) as *const AtomicU32) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data follows the header inside the mapping.
        unsafe { self.region.as_ptr().add(HEADER) }
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
    #[cfg(all(test, any(target_os = "linux", windows)))]
    pub(crate) fn is_drained(&self) -> bool {
        self.counter(HEAD).load(Ordering::Acquire) == self.counter(TAIL).load(Ordering::Relaxed)
    }

    /// Consumer: passes every published frame to `apply` (copied into `scratch`), in order,
    /// then frees their room. Returns how many frames there were. Every index read from the
    /// shared memory is checked before it is used: a producer that writes anything else gets
    /// [`Corrupt`], never a read outside the ring.
    pub(crate) fn drain(
        &self,
        scratch: &mut Vec<u8>,
        mut apply: impl FnMut(&[u8]),
    ) -> Result<usize, Corrupt> {
        let tail = self.counter(TAIL).load(Ordering::SeqCst);
        let mut head = self.consumed.load(Ordering::Relaxed);
        if tail < head || tail - head > CAPACITY as u64 {
            return Err(Corrupt);
        }
        let mut frames = 0;
        let data = self.data();
        while head < tail {
            // Our own head only ever advances by multiples of 4, so the length is inside.
            let position = (head % CAPACITY as u64) as usize;
            if position + 4 > CAPACITY {
                return Err(Corrupt);
            }
            // SAFETY: `position + 4` is inside the data (checked above).
            let len = unsafe { (data.add(position) as *const u32).read_unaligned() };
            let step = if len == PAD {
                CAPACITY - position
            } else {
                round4(4 + len as usize)
            };
            let published = head.checked_add(step as u64).is_some_and(|end| end <= tail);
            if !published {
                return Err(Corrupt);
            }
            if len == PAD {
                head += step as u64;
                continue;
            }
            let len = len as usize;
            if len > MAX_RECORD || position + 4 + len > CAPACITY {
                return Err(Corrupt);
            }
            scratch.clear();
            // SAFETY: `len` bytes after the length are inside the data (checked above).
            unsafe {
                scratch.extend_from_slice(std::slice::from_raw_parts(data.add(position + 4), len));
            }
            apply(scratch);
            frames += 1;
            head += step as u64;
        }
        self.consumed.store(head, Ordering::Relaxed);
        self.counter(HEAD).store(head, Ordering::Release);
        Ok(frames)
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
        self.counter(TAIL).load(Ordering::SeqCst) != self.consumed.load(Ordering::Relaxed)
    }

    /// Stands for a lying producer: publishes `tail` whatever the records say.
    #[cfg(all(test, any(target_os = "linux", windows)))]
    pub(crate) fn publish_tail(&self, tail: u64) {
        self.counter(TAIL).store(tail, Ordering::SeqCst);
    }
}

#[cfg(all(test, any(target_os = "linux", windows)))]
mod tests {
    use super::*;

    fn pair() -> (Ring, Ring) {
        let (producer, fd) = Ring::create().unwrap();
        let consumer = Ring::attach(fd.try_clone().unwrap()).unwrap();
        (producer, consumer)
    }

    #[test]
    fn frames_go_through_in_order_across_the_wrap() {
        let (producer, consumer) = pair();
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
            consumer
                .drain(&mut scratch, |frame| {
                    assert_eq!(frame.len(), 1000 + (seen as usize % 7), "round {round}");
                    assert!(frame.iter().all(|&b| b == (seen % 251) as u8));
                    seen += 1;
                })
                .unwrap();
            assert!(producer.is_drained());
        }
        assert_eq!(seen, next);
        assert!(next > 3 * (CAPACITY / 1008) as u32);
    }

    #[test]
    fn wild_indices_are_refused_without_reading_outside_the_ring() {
        let mut scratch = Vec::new();
        for wild in [u64::MAX, CAPACITY as u64 + 1, 2] {
            let (producer, consumer) = pair();
            producer.publish_tail(wild);
            assert_eq!(consumer.drain(&mut scratch, |_| {}), Err(Corrupt), "{wild}");
        }
        // A length that claims more than was published, then one past the end of the data.
        let (producer, consumer) = pair();
        producer.push(&[7; 100]).unwrap();
        // SAFETY: the first length field of the data, inside the mapping.
        unsafe { (producer.data() as *mut u32).write_unaligned(CAPACITY as u32 - 2) };
        assert_eq!(consumer.drain(&mut scratch, |_| {}), Err(Corrupt));
    }

    #[test]
    fn the_producer_sees_a_sleeping_consumer() {
        let (producer, consumer) = pair();
        assert_eq!(producer.push(b"a"), Ok(false));
        consumer.set_sleeping(true);
        assert_eq!(producer.push(b"b"), Ok(true));
        assert!(consumer.has_records());
    }
}
