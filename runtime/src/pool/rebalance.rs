//! The scheduler's end game: when a worker runs dry while another still holds items it has
//! not started, those items are taken back and dealt again, so no worker idles while work
//! waits in another's pipeline.
//!
//! Chunks are committed before their cost is known (the first ones are sized blind) and a
//! worker keeps a second chunk queued behind the one it runs, so without this the last
//! chunks decide the end: one worker finishes its queue while the other still has a chunk
//! of several items to go. A release asks for every item the worker has not started (the
//! rest of its running chunk too); the worker decides under one lock which items those are
//! ([`Inbox`](crate::pool::inbox::Inbox)) and names the first by its ordinal, so an item is
//! either run there or given back — never both, never neither.

use std::time::Duration;

use super::{Scheduler, WorkerId};

/// Least held-back work worth asking for: a release costs a round trip to the worker and a
/// new chunk (a few hundred microseconds on a loaded machine), and at best halves the wait
/// for what is held — below this it lengthens the end it means to shorten.
pub(crate) const RELEASE_WORTH: Duration = Duration::from_millis(1);

impl Scheduler {
    /// The worker's answer to a release: items from ordinal `next` on were not started and
    /// never will be; they go back to the front of their queues and are dealt again.
    pub(crate) fn released(&mut self, worker: WorkerId, next: u64) {
        let Some(slot) = self.slot_of(worker) else {
            return;
        };
        let Some(w) = self.slots[slot].as_mut() else {
            return;
        };
        let front = w.front_ordinal();
        if !w.releasing || next < front || next > w.sent {
            // Unasked, or it claims not to have started an item it already reported (or one
            // never sent).
            return self.protocol_violation(slot);
        }
        w.releasing = false;
        // The worker numbers its next chunk from `next`, and so does the scheduler.
        w.sent = next;
        let kept = usize::try_from(next - front).unwrap_or(usize::MAX);
        let given_back = w.in_flight.split_off(kept.min(w.in_flight.len()));
        w.chunk_ends.retain(|&end| end <= next);
        if !w.in_flight.is_empty() && w.chunk_ends.back().is_none_or(|&end| end < next) {
            // The chunk it runs now ends where the release cut it.
            w.chunk_ends.push_back(next);
        }
        if w.in_flight.is_empty() {
            w.running = None;
            w.handed = None;
        }
        self.requeue(given_back, false);
        self.fill();
    }

    /// With nothing queued, asks a worker that holds items it has not started to give them
    /// back, for each ready worker with nothing to run.
    pub(super) fn rebalance(&mut self) {
        if self.terminated || self.jobs.values().any(|job| !job.queue.is_empty()) {
            return;
        }
        let idle = self
            .slots
            .iter()
            .flatten()
            .filter(|w| w.ready && !w.releasing && w.in_flight.is_empty())
            .count();
        for _ in 0..idle {
            let Some(slot) = self.richest_victim() else {
                return;
            };
            if let Some(w) = self.slots[slot].as_mut() {
                w.releasing = true;
                self.actions.push_back(super::Action::Release(w.id));
            }
        }
    }

    /// The worker holding the most items it cannot have started (all but the first in
    /// flight), when they are worth a round trip: at least [`RELEASE_WORTH`] at their job's
    /// measured cost, or of a cost not measured yet.
    fn richest_victim(&self) -> Option<usize> {
        let held = |slot: usize| -> Option<usize> {
            let w = self.slots[slot].as_ref()?;
            if !w.ready || w.releasing {
                return None;
            }
            let waiting = w.in_flight.len().checked_sub(1).filter(|&n| n > 0)?;
            // Priced at the cost of the job it runs last (a cost not measured yet could be
            // anything: worth asking).
            let job = w.in_flight.back_job()?;
            let Some(cost) = self.jobs.get(&job).and_then(|j| j.cost) else {
                return Some(waiting);
            };
            let work = cost.saturating_mul(u32::try_from(waiting).unwrap_or(u32::MAX));
            (work >= RELEASE_WORTH).then_some(waiting)
        };
        (0..self.slots.len())
            .filter_map(|slot| held(slot).map(|n| (n, slot)))
            .max()
            .map(|(_, slot)| slot)
    }
}
