//! What a reader in another process and the broker share about its leases, so a crash costs
//! at most the message in hand: a small shared-memory region per reading connection (the
//! reader creates it and hands it over with its first fetch, as the share's write rings come).
//!
//! - `done_below`, written by the reader as it hands each message to user code: every
//!   delivery numbered below it is done. Handing message `n` stores `n` (taking the next
//!   message acknowledges the one before), [`Queue::ack`](crate::Queue::ack) stores `n + 1`.
//!   One atomic store, no system call. When the connection ends without a goodbye (a crash),
//!   the broker acknowledges what is below it and gives back the rest.
//! - `revoked`, written by the broker when the reader's lease ran out (it was silent for
//!   [`QueueConfig::lease`](crate::queue::QueueConfig::lease): stopped, frozen): its
//!   deliveries went back to the queue, so the reader drops what it prefetched before handing
//!   out another.
//!
//! Where no region can be made (no `memfd`), the reader sends an acknowledgement frame as it
//! hands each message instead: the same guarantee, at a system call per message.

use std::sync::atomic::Ordering;

use crate::sys::shm::RegionFd;
use crate::transport::region::SharedWords;

/// Slots of the two words (each on a cache line of its own).
const DONE_BELOW: usize = 0;
const REVOKED: usize = 1;

/// One reader's shared words (either side's mapping).
pub(crate) struct LeaseWords {
    words: SharedWords,
}

impl LeaseWords {
    /// Creates the region (the reader's side); fails where there is no shared memory.
    pub(crate) fn create() -> std::io::Result<(Self, RegionFd)> {
        let (words, fd) = SharedWords::create("skp-lease")?;
        Ok((Self { words }, fd))
    }

    /// Maps a region a reader handed over (the broker's side), once it proved to be a sealed
    /// region of the right size. The broker trusts nothing it reads there beyond what the
    /// reader could do anyway: acknowledge its own deliveries.
    pub(crate) fn attach(fd: RegionFd) -> std::io::Result<Self> {
        Ok(Self {
            words: SharedWords::attach(fd)?,
        })
    }

    /// Every delivery numbered below this is done.
    pub(crate) fn done_below(&self) -> u64 {
        self.words.word(DONE_BELOW).load(Ordering::SeqCst)
    }

    /// Reader: every delivery below `seq` is done.
    pub(crate) fn set_done_below(&self, seq: u64) {
        self.words.word(DONE_BELOW).store(seq, Ordering::SeqCst);
    }

    /// How many times the broker revoked this reader's leases.
    pub(crate) fn revoked(&self) -> u64 {
        self.words.word(REVOKED).load(Ordering::SeqCst)
    }

    /// Broker: the reader's leases were given back.
    pub(crate) fn revoke(&self) {
        self.words.word(REVOKED).fetch_add(1, Ordering::SeqCst);
    }
}
