//! Reordering for [`sorted`](crate::Queue::sorted), without I/O: messages go in as they
//! arrive and come out by `order`, the next expected number first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A message waiting for its turn, ordered by its `order` only.
struct Waiting<M> {
    order: u64,
    message: M,
}

impl<M> PartialEq for Waiting<M> {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}

impl<M> Eq for Waiting<M> {}

impl<M> PartialOrd for Waiting<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Waiting<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order.cmp(&other.order)
    }
}

/// Buffers out-of-order messages until the next expected `order` arrives.
pub(crate) struct Reorder<M> {
    next: u64,
    waiting: BinaryHeap<Reverse<Waiting<M>>>,
}

impl<M> Reorder<M> {
    /// Expects `start` first.
    pub(crate) fn new(start: u64) -> Self {
        Self {
            next: start,
            waiting: BinaryHeap::new(),
        }
    }

    /// Takes a message that arrived; `None` for its order puts it straight out (it has no
    /// place in the sequence), as does an order below the next expected (a late duplicate or
    /// a number already passed).
    pub(crate) fn push(&mut self, order: Option<u64>, message: M) -> Option<M> {
        match order {
            Some(order) if order >= self.next => {
                self.waiting.push(Reverse(Waiting { order, message }));
                None
            }
            _ => Some(message),
        }
    }

    /// The next message in order, if it has arrived.
    pub(crate) fn pop_ready(&mut self) -> Option<M> {
        let Reverse(front) = self.waiting.peek()?;
        if front.order != self.next {
            return None;
        }
        let Reverse(ready) = self.waiting.pop()?;
        self.next = ready.order.saturating_add(1);
        Some(ready.message)
    }

    /// After the end: what is still waiting, in order, skipping the gaps.
    pub(crate) fn pop_remaining(&mut self) -> Option<M> {
        let Reverse(ready) = self.waiting.pop()?;
        self.next = ready.order.saturating_add(1);
        Some(ready.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reorder: &mut Reorder<u64>, orders: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        for &order in orders {
            out.extend(reorder.push(Some(order), order));
            out.extend(std::iter::from_fn(|| reorder.pop_ready()));
        }
        out
    }

    #[test]
    fn out_of_order_messages_wait_for_the_next_number() {
        let mut reorder = Reorder::new(0);
        assert_eq!(feed(&mut reorder, &[2, 1, 4]), Vec::<u64>::new());
        assert_eq!(feed(&mut reorder, &[0]), [0, 1, 2]);
        assert_eq!(feed(&mut reorder, &[3]), [3, 4]);
    }

    #[test]
    fn at_the_end_the_rest_comes_out_in_order_across_gaps() {
        let mut reorder = Reorder::new(0);
        assert!(feed(&mut reorder, &[7, 5, 9]).is_empty());
        let rest: Vec<_> = std::iter::from_fn(|| reorder.pop_remaining()).collect();
        assert_eq!(rest, [5, 7, 9]);
    }

    #[test]
    fn unordered_and_late_messages_pass_straight_through() {
        let mut reorder = Reorder::new(10);
        assert_eq!(reorder.push(None, 1), Some(1));
        assert_eq!(reorder.push(Some(3), 3), Some(3));
        assert_eq!(feed(&mut reorder, &[10]), [10]);
    }
}
