//! The broker's state without I/O: the bounded buffer, the ends in it, and the messages
//! leased to each reader until it acknowledges them (or goes away and they are requeued).
//!
//! Generic over the entry `E` so the cross-process broker (encoded messages) and the
//! thread-only queue (typed messages) share it.

use std::collections::{HashMap, VecDeque};

/// One thing in the queue: a message, or an end (one reader stops when it reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry<E> {
    Msg(E),
    End,
}

/// Who holds leases: one connection of a reader in another process.
pub(crate) type ReaderId = u64;

/// What a reader was handed by [`Buffer::take_leased`]: `count` entries numbered from `first`
/// (its delivery sequence), the last of which is an end when `end` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) first: u64,
    pub(crate) count: usize,
    pub(crate) end: bool,
}

/// The entries one reader holds, in delivery order.
#[derive(Debug)]
struct Leases<E> {
    next_seq: u64,
    held: VecDeque<(u64, Entry<E>)>,
}

impl<E> Default for Leases<E> {
    fn default() -> Self {
        Self {
            next_seq: 0,
            held: VecDeque::new(),
        }
    }
}

/// The bounded buffer with its leases.
#[derive(Debug)]
pub(crate) struct Buffer<E> {
    entries: VecDeque<Entry<E>>,
    /// Messages in `entries` (ends are not counted against the capacity).
    messages: usize,
    capacity: usize,
    readers: HashMap<ReaderId, Leases<E>>,
    next_reader: ReaderId,
}

impl<E> Buffer<E> {
    /// An empty buffer that holds at most `capacity` messages (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            messages: 0,
            capacity: capacity.max(1),
            readers: HashMap::new(),
            next_reader: 0,
        }
    }

    /// Whether a put would be accepted now.
    pub(crate) fn has_room(&self) -> bool {
        self.messages < self.capacity
    }

    /// Messages waiting (not leased).
    pub(crate) fn len(&self) -> usize {
        self.messages
    }

    /// Appends a message, or gives it back when the buffer is full.
    pub(crate) fn try_push(&mut self, message: E) -> Result<(), E> {
        if !self.has_room() {
            return Err(message);
        }
        self.entries.push_back(Entry::Msg(message));
        self.messages += 1;
        Ok(())
    }

    /// Appends an end; never refused, so ending a full queue does not wait.
    pub(crate) fn push_end(&mut self) {
        self.entries.push_back(Entry::End);
    }

    /// Whether anything (a message or an end) waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the first entry for a reader that holds no lease (a thread of the creating
    /// process: if it dies, so does the queue).
    pub(crate) fn take_one(&mut self) -> Option<Entry<E>> {
        let entry = self.entries.pop_front()?;
        if matches!(entry, Entry::Msg(_)) {
            self.messages -= 1;
        }
        Some(entry)
    }

    /// Registers a reader in another process; its leases are kept until it acknowledges them.
    pub(crate) fn add_reader(&mut self) -> ReaderId {
        let id = self.next_reader;
        self.next_reader += 1;
        self.readers.insert(id, Leases::default());
        id
    }

    /// Leases up to `max` entries to `reader`, stopping after an end. A reader gets at most its
    /// fair share of the waiting messages (their number divided by the readers), so prefetching
    /// never leaves another reader idle while one holds everything. `None` when nothing waits
    /// or the reader is unknown.
    /// `budget` bounds the total `cost` of the messages (at least one is always taken), so a
    /// batch of large messages still fits in one frame.
    pub(crate) fn take_leased(
        &mut self,
        reader: ReaderId,
        max: usize,
        budget: usize,
        cost: impl Fn(&E) -> usize,
    ) -> Option<Grant> {
        if self.entries.is_empty() {
            return None;
        }
        let share = (self.messages / self.readers.len().max(1)).max(1);
        let limit = max.clamp(1, share);
        let leases = self.readers.get_mut(&reader)?;
        let first = leases.next_seq;
        let mut grant = Grant {
            first,
            count: 0,
            end: false,
        };
        let mut spent = 0usize;
        while grant.count < limit && !grant.end {
            if let Some(Entry::Msg(next)) = self.entries.front() {
                spent = spent.saturating_add(cost(next));
                if spent > budget && grant.count > 0 {
                    break;
                }
            }
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            match entry {
                Entry::Msg(_) => self.messages -= 1,
                Entry::End => grant.end = true,
            }
            leases.held.push_back((leases.next_seq, entry));
            leases.next_seq += 1;
            grant.count += 1;
        }
        Some(grant)
    }

    /// The entries leased to `reader` from sequence `first` on, in order.
    pub(crate) fn leased_from(
        &self,
        reader: ReaderId,
        first: u64,
    ) -> impl Iterator<Item = &Entry<E>> + '_ {
        self.readers
            .get(&reader)
            .into_iter()
            .flat_map(|leases| leases.held.iter())
            .filter(move |(seq, _)| *seq >= first)
            .map(|(_, entry)| entry)
    }

    /// The reader is done with every entry up to sequence `through`.
    pub(crate) fn ack(&mut self, reader: ReaderId, through: u64) {
        if let Some(leases) = self.readers.get_mut(&reader) {
            while leases.held.front().is_some_and(|(seq, _)| *seq <= through) {
                leases.held.pop_front();
            }
        }
    }

    /// Gives back the entries leased to `reader` from sequence `from` on (prefetched but not
    /// read): they go to the front of the queue, in their order.
    pub(crate) fn release(&mut self, reader: ReaderId, from: u64) -> usize {
        let Some(leases) = self.readers.get_mut(&reader) else {
            return 0;
        };
        let split = leases.held.partition_point(|(seq, _)| *seq < from);
        let returned = leases.held.split_off(split);
        let count = returned.len();
        for (_, entry) in returned.into_iter().rev() {
            if matches!(entry, Entry::Msg(_)) {
                self.messages += 1;
            }
            self.entries.push_front(entry);
        }
        count
    }

    /// The reader is done with every delivery numbered below `done_below` (0: none), and
    /// gives back the rest of what it holds — the message in its hand and what it prefetched
    /// — to the front of the queue. Returns how many went back.
    pub(crate) fn revoke(&mut self, reader: ReaderId, done_below: u64) -> usize {
        if let Some(through) = done_below.checked_sub(1) {
            self.ack(reader, through);
        }
        self.release(reader, 0)
    }

    /// Whether `reader` holds any delivery.
    pub(crate) fn holds(&self, reader: ReaderId) -> bool {
        self.readers
            .get(&reader)
            .is_some_and(|leases| !leases.held.is_empty())
    }

    /// The reader went away (its process died, or its connection ended): what it finished
    /// (below `done_below`) is done, everything else it held goes back to the front of the
    /// queue for another reader.
    pub(crate) fn remove_reader(&mut self, reader: ReaderId, done_below: u64) -> usize {
        let returned = self.revoke(reader, done_below);
        self.readers.remove(&reader);
        returned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(capacity: usize, messages: impl IntoIterator<Item = u32>) -> Buffer<u32> {
        let mut buffer = Buffer::new(capacity);
        for message in messages {
            buffer.try_push(message).unwrap();
        }
        buffer
    }

    fn leased(buffer: &Buffer<u32>, reader: ReaderId, first: u64) -> Vec<Entry<u32>> {
        buffer.leased_from(reader, first).cloned().collect()
    }

    fn drain(buffer: &mut Buffer<u32>) -> Vec<Entry<u32>> {
        std::iter::from_fn(|| buffer.take_one()).collect()
    }

    #[test]
    fn a_full_buffer_refuses_a_message_and_gives_it_back_but_takes_an_end() {
        let mut buffer = filled(2, [1, 2]);
        assert_eq!(buffer.try_push(3), Err(3));
        buffer.push_end();
        assert_eq!(buffer.take_one(), Some(Entry::Msg(1)));
        assert!(buffer.has_room());
        assert_eq!(
            drain(&mut buffer),
            [Entry::Msg(2), Entry::End],
            "the end came after the messages"
        );
    }

    #[test]
    fn a_grant_stops_after_an_end_so_one_end_stops_one_reader() {
        let mut buffer = filled(10, [1, 2]);
        buffer.push_end();
        buffer.try_push(3).unwrap();
        let reader = buffer.add_reader();
        let grant = buffer.take_leased(reader, 100, usize::MAX, |_| 1).unwrap();
        assert_eq!(
            grant,
            Grant {
                first: 0,
                count: 3,
                end: true
            }
        );
        assert_eq!(
            leased(&buffer, reader, 0),
            [Entry::Msg(1), Entry::Msg(2), Entry::End]
        );
        assert_eq!(buffer.len(), 1);
    }

    #[test]
    fn a_dead_readers_leases_go_back_to_the_front_in_order() {
        let mut buffer = filled(10, 1..=6);
        let reader = buffer.add_reader();
        buffer.take_leased(reader, 3, usize::MAX, |_| 1).unwrap();
        buffer.ack(reader, 0);
        assert_eq!(buffer.remove_reader(reader, 0), 2);
        assert_eq!(
            drain(&mut buffer),
            [2, 3, 4, 5, 6].map(Entry::Msg),
            "the acknowledged message is gone, the others are first again"
        );
    }

    #[test]
    fn a_crashed_reader_gives_back_only_what_it_had_not_finished() {
        let mut buffer = filled(10, 1..=6);
        let reader = buffer.add_reader();
        buffer.take_leased(reader, 6, usize::MAX, |_| 1).unwrap();
        // Handed deliveries 0..=3, working on 3: everything below 3 is done.
        assert!(buffer.holds(reader));
        assert_eq!(buffer.remove_reader(reader, 3), 3);
        assert_eq!(drain(&mut buffer), [4, 5, 6].map(Entry::Msg));
    }

    #[test]
    fn a_revoked_reader_keeps_its_place_and_later_acks_of_what_it_lost_do_nothing() {
        let mut buffer = filled(10, 1..=3);
        let reader = buffer.add_reader();
        buffer.take_leased(reader, 2, usize::MAX, |_| 1).unwrap();
        assert_eq!(buffer.revoke(reader, 1), 1);
        assert!(!buffer.holds(reader));
        buffer.ack(reader, 1);
        assert_eq!(drain(&mut buffer), [2, 3].map(Entry::Msg));
        buffer.try_push(4).unwrap();
        let grant = buffer.take_leased(reader, 1, usize::MAX, |_| 1).unwrap();
        assert_eq!(grant.first, 2, "sequences go on after a revocation");
    }

    #[test]
    fn released_prefetch_goes_back_but_read_messages_stay_leased() {
        let mut buffer = filled(10, 1..=4);
        let reader = buffer.add_reader();
        let grant = buffer.take_leased(reader, 4, usize::MAX, |_| 1).unwrap();
        assert_eq!(grant.count, 4);
        assert_eq!(buffer.release(reader, 2), 2);
        assert_eq!(leased(&buffer, reader, 0), [1, 2].map(Entry::Msg));
        assert_eq!(drain(&mut buffer), [3, 4].map(Entry::Msg));
        assert_eq!(buffer.remove_reader(reader, 0), 2);
    }

    #[test]
    fn prefetch_takes_only_a_fair_share_so_a_second_reader_gets_work() {
        let mut buffer = filled(100, 1..=10);
        let first = buffer.add_reader();
        let second = buffer.add_reader();
        let a = buffer.take_leased(first, 256, usize::MAX, |_| 1).unwrap();
        let b = buffer.take_leased(second, 256, usize::MAX, |_| 1).unwrap();
        assert_eq!(a.count, 5);
        assert!(b.count >= 2, "the second reader was starved: {b:?}");
        // One message left and two readers: still one, never zero.
        let mut buffer = filled(100, [1]);
        let reader = buffer.add_reader();
        buffer.add_reader();
        assert_eq!(
            buffer
                .take_leased(reader, 256, usize::MAX, |_| 1)
                .unwrap()
                .count,
            1
        );
    }

    #[test]
    fn sequences_continue_across_grants_and_acks_free_leases() {
        let mut buffer = filled(10, 1..=4);
        let reader = buffer.add_reader();
        let a = buffer.take_leased(reader, 2, usize::MAX, |_| 1).unwrap();
        let b = buffer.take_leased(reader, 2, usize::MAX, |_| 1).unwrap();
        assert_eq!((a.first, b.first), (0, 2));
        assert_eq!(leased(&buffer, reader, 2), [3, 4].map(Entry::Msg));
        buffer.ack(reader, 3);
        assert_eq!(buffer.remove_reader(reader, 0), 0);
        assert!(
            buffer.take_leased(reader, 1, usize::MAX, |_| 1).is_none(),
            "unknown reader"
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_grant_stops_at_its_budget_but_always_takes_one() {
        let mut buffer = filled(10, [5, 5, 5, 50]);
        let reader = buffer.add_reader();
        let cost = |message: &u32| *message as usize;
        assert_eq!(buffer.take_leased(reader, 10, 12, cost).unwrap().count, 2);
        assert_eq!(buffer.take_leased(reader, 10, 12, cost).unwrap().count, 1);
        assert_eq!(buffer.take_leased(reader, 10, 12, cost).unwrap().count, 1);
    }

    #[test]
    fn a_requeued_message_counts_against_the_capacity_again() {
        let mut buffer = filled(2, [1, 2]);
        let reader = buffer.add_reader();
        buffer.take_leased(reader, 2, usize::MAX, |_| 1).unwrap();
        assert!(buffer.has_room());
        buffer.try_push(3).unwrap();
        buffer.remove_reader(reader, 0);
        assert_eq!(buffer.len(), 3);
        assert!(!buffer.has_room());
    }
}
