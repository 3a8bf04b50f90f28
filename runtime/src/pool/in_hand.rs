//! The item a worker process holds, kept where its parent can read it after the worker died,
//! so a crash is pinned on the right item without a message per item.
//!
//! A pool worker creates the page before it answers its start and sends it with its `Ready`
//! (one [`SharedWords`] page; on Linux a sealed `memfd`). Before each item runs it stores the
//! item's ordinal (items are counted in the order sent, as both sides count them, see
//! [`Inbox`](super::inbox::Inbox)): one atomic store, no system call. The parent reads the page
//! only once the worker is gone and reaped: the ordinal stored last is the item it died holding
//! (or the last it started, which was then reported, unless it had not finished). Where no page
//! can be made the worker reports a `#[skprocess]` item's start as a frame instead.

use std::sync::atomic::Ordering;

use crate::sys::shm::RegionFd;
use crate::transport::region::SharedWords;

/// The word holding one more than the ordinal of the item in hand (0: none started yet).
const IN_HAND: usize = 0;

/// A worker's page (either side's mapping).
#[derive(Debug)]
pub(crate) struct InHand {
    words: SharedWords,
}

impl InHand {
    /// Creates the page (the worker's side); fails where there is no shared memory.
    pub(crate) fn create() -> std::io::Result<(Self, RegionFd)> {
        let (words, fd) = SharedWords::create("skp-in-hand")?;
        Ok((Self { words }, fd))
    }

    /// Maps the page a worker handed over (the parent's side).
    pub(crate) fn attach(fd: RegionFd) -> std::io::Result<Self> {
        Ok(Self {
            words: SharedWords::attach(fd)?,
        })
    }

    /// Worker: the item of this ordinal starts now.
    pub(crate) fn hold(&self, ordinal: u64) {
        let value = ordinal.saturating_add(1);
        self.words.word(IN_HAND).store(value, Ordering::Release);
    }

    /// Parent, once the worker is gone: the ordinal of the item it started last, if any.
    pub(crate) fn last_started(&self) -> Option<u64> {
        self.words
            .word(IN_HAND)
            .load(Ordering::Acquire)
            .checked_sub(1)
    }
}
