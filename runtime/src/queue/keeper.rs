//! The lease keeper: with a [`QueueConfig::lease`](crate::queue::QueueConfig::lease), a thread
//! of the broker that gives back the deliveries of readers silent for longer than the lease —
//! a reader process stopped by `SIGSTOP`, frozen in a cgroup or under a debugger keeps nobody
//! else waiting. A reader is heard from when it sends a request or hands itself another
//! message (its shared `done_below` moves); what it finished before it fell silent stays done.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::queue::buffer::ReaderId;
use crate::queue::hub::Hub;
use crate::queue::lease::LeaseWords;

/// Longest pause between two looks at the readers.
const MAX_TICK: Duration = Duration::from_secs(1);
/// Shortest pause, so a tiny lease does not spin.
const MIN_TICK: Duration = Duration::from_millis(1);

/// One reader as the keeper sees it.
pub(crate) struct Watched {
    words: Option<Arc<LeaseWords>>,
    /// When the reader was last heard from, and its `done_below` then.
    heard: Mutex<(Instant, u64)>,
}

impl Watched {
    fn lock(&self) -> MutexGuard<'_, (Instant, u64)> {
        self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader sent a request, or was leased messages (then under the hub's lock).
    pub(crate) fn heard_now(&self) {
        self.lock().0 = Instant::now();
    }

    fn done_below(&self) -> u64 {
        self.words.as_deref().map_or(0, LeaseWords::done_below)
    }
}

#[derive(Default)]
struct Watch {
    readers: HashMap<ReaderId, Arc<Watched>>,
    stopped: bool,
}

/// The keeper's state, shared by the broker's sessions and its thread.
pub(crate) struct Keeper {
    lease: Duration,
    hub: Arc<Hub<Vec<u8>>>,
    watch: Mutex<Watch>,
    changed: Condvar,
}

impl Keeper {
    /// Starts the keeper's thread for `lease`; a system that refuses the thread is an error.
    pub(crate) fn start(lease: Duration, hub: Arc<Hub<Vec<u8>>>) -> Result<Arc<Self>, Error> {
        let keeper = Arc::new(Self {
            lease,
            hub,
            watch: Mutex::default(),
            changed: Condvar::new(),
        });
        let keeping = Arc::clone(&keeper);
        std::thread::Builder::new()
            .name("skprocess-queue-lease".into())
            .spawn(move || keeping.run())?;
        Ok(keeper)
    }

    fn lock(&self) -> MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches a reader from now on.
    pub(crate) fn watch(&self, reader: ReaderId, words: Option<Arc<LeaseWords>>) -> Arc<Watched> {
        let done = words.as_deref().map_or(0, LeaseWords::done_below);
        let watched = Arc::new(Watched {
            words,
            heard: Mutex::new((Instant::now(), done)),
        });
        self.lock().readers.insert(reader, Arc::clone(&watched));
        watched
    }

    /// The reader's connection ended.
    pub(crate) fn forget(&self, reader: ReaderId) {
        self.lock().readers.remove(&reader);
    }

    /// Ends the thread (the broker is dropped).
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    fn run(&self) {
        let tick = (self.lease / 4).clamp(MIN_TICK, MAX_TICK);
        let mut watch = self.lock();
        loop {
            watch = self
                .changed
                .wait_timeout(watch, tick)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if watch.stopped {
                return;
            }
            let readers: Vec<_> = watch
                .readers
                .iter()
                .map(|(r, w)| (*r, Arc::clone(w)))
                .collect();
            drop(watch);
            for (reader, watched) in readers {
                self.look_at(reader, &watched);
            }
            watch = self.lock();
        }
    }

    /// Gives back a silent reader's deliveries once its lease ran out. The last look at when
    /// it was heard from is taken under the hub's lock, where a fetch that leases it new
    /// messages marks it heard, so a grant is never revoked the moment it is made.
    fn look_at(&self, reader: ReaderId, watched: &Watched) {
        let done = watched.done_below();
        {
            let mut heard = watched.lock();
            if done != heard.1 {
                *heard = (Instant::now(), done);
                return;
            }
        }
        let revoked = self.hub.update(|buffer| {
            let mut heard = watched.lock();
            let silent = Instant::now().saturating_duration_since(heard.0);
            if silent < self.lease || !buffer.holds(reader) {
                return false;
            }
            buffer.revoke(reader, done);
            heard.0 = Instant::now();
            true
        });
        if revoked && let Some(words) = &watched.words {
            words.revoke();
        }
    }
}
