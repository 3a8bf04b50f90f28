//! The messages a process holds of one queue (in its threads' hands), and, for a queue
//! without a lease, the thread that touches them every [`HEARTBEAT`] — like a host touches
//! its entries — so that they look idle only once the process stopped.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::cluster::keys::{HEARTBEAT, QUEUE_GROUP};
use crate::cluster::link::{self, COMMAND_TIMEOUT, Server};

/// The ids of the messages in this process's hands.
#[derive(Debug, Default)]
pub(super) struct Held {
    ids: Mutex<BTreeSet<String>>,
    touching: AtomicBool,
}

impl Held {
    pub(super) fn hold(&self, id: &str) {
        self.lock().insert(id.to_owned());
    }

    pub(super) fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(super) fn holds(&self, id: &str) -> bool {
        self.lock().contains(id)
    }

    /// Takes every id out (the process's last handle is gone).
    pub(super) fn take_all(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock()).into_iter().collect()
    }

    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the touches go.
pub(super) struct Touch {
    pub(super) server: Server,
    pub(super) key: String,
    pub(super) consumer: String,
}

/// Starts the touching thread of `held` unless it runs; it ends with the last `Arc` of
/// `held` (the queue's last handle in this process). A failed touch is tried again at the
/// next beat on a new connection: holds stay safe for [`HOST_TTL`](super::super::HOST_TTL).
pub(super) fn keep_touched(held: &Arc<Held>, touch: Touch) {
    if held.touching.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak: Weak<Held> = Arc::downgrade(held);
    let started = std::thread::Builder::new()
        .name("skprocess-queue-touch".to_owned())
        .spawn(move || {
            let mut connection = None;
            loop {
                std::thread::sleep(HEARTBEAT);
                let Some(held) = weak.upgrade() else {
                    return;
                };
                let ids = held.snapshot();
                drop(held);
                if ids.is_empty() {
                    continue;
                }
                if connection.is_none() {
                    connection = touch.server.connect(COMMAND_TIMEOUT).ok();
                }
                let Some(c) = connection.as_mut() else {
                    continue;
                };
                if link::touch(c, &touch.key, QUEUE_GROUP, &touch.consumer, &ids).is_err() {
                    connection = None;
                }
            }
        });
    if started.is_err() {
        held.touching.store(false, Ordering::SeqCst);
    }
}
