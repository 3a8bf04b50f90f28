//! The scheduler's items, kept as they came. A map's caller hands its items over in batches,
//! encoded one after another into one buffer in the very form a chunk carries them (index,
//! length, value: [`ItemBatch`] → [`EncodedItems`]); a job's queue and a worker's items in
//! flight ([`Items`]) keep *runs* of such a batch, so a chunk is cut from a queue, held in
//! flight and written to a worker as a range of a batch — no item is made, moved or counted
//! one by one on its way out. An item becomes a value of its own ([`Item`]) only where it is
//! handled alone: the one a worker reports running, or died holding, and items dealt again
//! after a death as suspects.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use crate::pool::shared_bytes::SharedBytes;
use crate::protocol::pool::put_item;
use crate::transport::frame::put_varint;

/// One map call.
pub(crate) type JobId = u64;

/// One item: its index in the input and its encoded value.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) index: u64,
    pub(crate) bytes: SharedBytes,
    /// Lives a `#[skprocess]` item spent: crashes of workers that were running it, and what
    /// its engine reported spending in them (its `Err`s, panics and overrun hooks).
    pub(super) spent: u32,
    /// Requeued after a crash that could not be pinned on one item.
    pub(super) suspect: bool,
}

impl Item {
    pub(crate) fn new(index: u64, bytes: SharedBytes) -> Self {
        Self {
            index,
            bytes,
            spent: 0,
            suspect: false,
        }
    }

    /// The item as a chunk lends it.
    pub(crate) fn view(&self) -> ItemView<'_> {
        ItemView {
            index: self.index,
            bytes: &self.bytes,
            spent: self.spent,
        }
    }

    /// The item, as having spent `spent` lives.
    #[cfg(test)]
    pub(crate) fn spent(mut self, spent: u32) -> Self {
        self.spent = spent;
        self
    }

    /// Its size in a chunk: index, length and value.
    fn wire_len(&self) -> usize {
        varint_len(self.index) + varint_len(self.bytes.len() as u64) + self.bytes.len()
    }
}

/// An item as a chunk lends it: its index, its value, and the lives it spent before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemView<'a> {
    pub(crate) index: u64,
    pub(crate) bytes: &'a [u8],
    pub(crate) spent: u32,
}

/// What the scheduler looks at before it takes an item: its job, its index, and whether it
/// is a suspect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) job: JobId,
    pub(crate) index: u64,
    pub(crate) suspect: bool,
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Items encoded one after another into one buffer, each as a chunk carries it (index,
/// length, value), with each one's index and the range of its value: how a map's caller
/// hands its input over. Item `i` is the bytes from the end of item `i - 1`'s value (from 0
/// for the first) to the end of its own, so any run of items is one range of the buffer.
pub(crate) struct EncodedItems {
    buffer: Arc<[u8]>,
    values: Vec<(u64, Range<usize>)>,
}

impl EncodedItems {
    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Each item's index.
    pub(crate) fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.values.iter().map(|(index, _)| *index)
    }

    /// Each item on its own, sharing the buffer: for an engine that takes them one by one.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn into_items(self) -> Vec<Item> {
        (0..self.len()).map(|at| self.item(at)).collect()
    }

    /// Where item `at` starts in the buffer, as a chunk carries it.
    fn wire_start(&self, at: usize) -> usize {
        match at {
            0 => 0,
            at => self.values[at - 1].1.end,
        }
    }

    /// The items of `span` (not empty), as a chunk carries them.
    fn wire(&self, span: &Range<usize>) -> &[u8] {
        &self.buffer[self.wire_start(span.start)..self.values[span.end - 1].1.end]
    }

    fn view(&self, at: usize) -> ItemView<'_> {
        let (index, range) = &self.values[at];
        ItemView {
            index: *index,
            bytes: &self.buffer[range.clone()],
            spent: 0,
        }
    }

    fn item(&self, at: usize) -> Item {
        let (index, range) = &self.values[at];
        Item::new(
            *index,
            SharedBytes::new(Arc::clone(&self.buffer), range.clone()),
        )
    }
}

/// An [`EncodedItems`] being written.
#[derive(Default)]
pub(crate) struct ItemBatch {
    encoded: Vec<u8>,
    values: Vec<(u64, Range<usize>)>,
}

impl ItemBatch {
    /// An empty batch with room for `items` items of `bytes` bytes in all.
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Self {
        Self {
            encoded: Vec::with_capacity(bytes),
            values: Vec::with_capacity(items),
        }
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it holds no item.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.encoded.len()
    }

    /// Appends item `index`, whose value `write` appends to the buffer it is given, as a
    /// chunk carries it; the value's bytes. When `write` fails the batch is as it was.
    pub(crate) fn push<E>(
        &mut self,
        index: u64,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<&[u8], E> {
        let start = self.encoded.len();
        put_varint(&mut self.encoded, index);
        // The length goes before the value, which is not written yet: one byte is kept for it
        // (a value under 128 bytes), and a longer value moves up to make room for more.
        let length_at = self.encoded.len();
        self.encoded.push(0);
        let value_at = self.encoded.len();
        if let Err(error) = write(&mut self.encoded) {
            self.encoded.truncate(start);
            return Err(error);
        }
        let len = self.encoded.len() - value_at;
        let mut moved = 0;
        if let Ok(short) = u8::try_from(len)
            && short < 0x80
        {
            self.encoded[length_at] = short;
        } else {
            let mut length = Vec::with_capacity(10);
            put_varint(&mut length, len as u64);
            moved = length.len() - 1;
            self.encoded.resize(self.encoded.len() + moved, 0);
            self.encoded
                .copy_within(value_at..value_at + len, value_at + moved);
            self.encoded[length_at..length_at + length.len()].copy_from_slice(&length);
        }
        let value = value_at + moved..value_at + moved + len;
        self.values.push((index, value.clone()));
        Ok(&self.encoded[value])
    }

    /// Takes back the item appended last (one whose value failed a check).
    pub(crate) fn pop(&mut self) {
        if self.values.pop().is_some() {
            let end = self.values.last().map_or(0, |(_, value)| value.end);
            self.encoded.truncate(end);
        }
    }

    /// The batch, to hand over.
    pub(crate) fn finish(self) -> EncodedItems {
        EncodedItems {
            buffer: Arc::from(self.encoded),
            values: self.values,
        }
    }
}

/// Items in order — a job's queue, or what a worker holds in flight — as runs of batches and
/// single items.
#[derive(Default)]
pub(crate) struct Items {
    pieces: VecDeque<Piece>,
    len: usize,
}

/// A run of a batch's items (never empty), or one item on its own.
enum Piece {
    Run {
        job: JobId,
        batch: Arc<EncodedItems>,
        span: Range<usize>,
    },
    One {
        job: JobId,
        item: Item,
    },
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Run { span, .. } => span.len(),
            Piece::One { .. } => 1,
        }
    }

    fn job(&self) -> JobId {
        match self {
            Piece::Run { job, .. } | Piece::One { job, .. } => *job,
        }
    }

    fn head(&self, at: usize) -> Head {
        match self {
            Piece::Run { job, batch, span } => Head {
                job: *job,
                index: batch.values[span.start + at].0,
                suspect: false,
            },
            Piece::One { job, item } => Head {
                job: *job,
                index: item.index,
                suspect: item.suspect,
            },
        }
    }

    /// Splits the first `count` items (fewer than all) off a run, as a piece of their own.
    fn split_front(&mut self, count: usize) -> Piece {
        match self {
            Piece::Run { job, batch, span } => {
                let front = span.start..span.start + count;
                span.start += count;
                Piece::Run {
                    job: *job,
                    batch: Arc::clone(batch),
                    span: front,
                }
            }
            // A single item is never split.
            Piece::One { .. } => unreachable!("a single item split"),
        }
    }

    /// How many of its first items, at most `most`, fit in `room` bytes as a chunk carries
    /// them; at least one when `at_least_one`.
    fn fitting(&self, most: usize, room: usize, at_least_one: bool) -> usize {
        let fit = match self {
            Piece::Run { batch, span, .. } => {
                let most = most.min(span.len());
                let start = batch.wire_start(span.start);
                let values = &batch.values[span.start..span.start + most];
                values.partition_point(|(_, value)| value.end - start <= room)
            }
            Piece::One { item, .. } => usize::from(most > 0 && item.wire_len() <= room),
        };
        if at_least_one { fit.max(1) } else { fit }
    }

    fn wire_len(&self) -> usize {
        match self {
            Piece::Run { batch, span, .. } => batch.wire(span).len(),
            Piece::One { item, .. } => item.wire_len(),
        }
    }

    /// Each item on its own.
    fn into_items(self) -> Box<dyn Iterator<Item = (JobId, Item)>> {
        match self {
            Piece::Run { job, batch, span } => Box::new(span.map(move |at| (job, batch.item(at)))),
            Piece::One { job, item } => Box::new(std::iter::once((job, item))),
        }
    }
}

impl Items {
    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a batch of `job`'s items.
    pub(crate) fn push_batch(&mut self, job: JobId, batch: EncodedItems) {
        let count = batch.len();
        if count > 0 {
            self.push_piece_back(Piece::Run {
                job,
                batch: Arc::new(batch),
                span: 0..count,
            });
        }
    }

    /// Puts one item first.
    pub(crate) fn push_front(&mut self, job: JobId, item: Item) {
        self.len += 1;
        self.pieces.push_front(Piece::One { job, item });
    }

    fn push_piece_back(&mut self, piece: Piece) {
        self.len += piece.len();
        self.pieces.push_back(piece);
    }

    /// Puts `items` first, in their order.
    pub(crate) fn prepend(&mut self, mut items: Items) {
        self.len += items.len;
        items.pieces.append(&mut self.pieces);
        self.pieces = items.pieces;
    }

    /// The first item's head.
    pub(crate) fn front(&self) -> Option<Head> {
        self.pieces.front().map(|piece| piece.head(0))
    }

    /// The last item's job.
    pub(crate) fn back_job(&self) -> Option<JobId> {
        self.pieces.back().map(Piece::job)
    }

    /// Whether any item is `job`'s.
    pub(crate) fn has_job(&self, job: JobId) -> bool {
        self.pieces.iter().any(|piece| piece.job() == job)
    }

    /// Every item's head, in order.
    pub(crate) fn heads(&self) -> impl Iterator<Item = Head> + '_ {
        self.pieces
            .iter()
            .flat_map(|piece| (0..piece.len()).map(move |at| piece.head(at)))
    }

    /// The first item, on its own, to change.
    pub(crate) fn front_mut(&mut self) -> Option<(JobId, &mut Item)> {
        self.cut_at(1);
        let piece = self.pieces.front_mut()?;
        if let Piece::Run { job, batch, span } = piece {
            *piece = Piece::One {
                job: *job,
                item: batch.item(span.start),
            };
        }
        match piece {
            Piece::One { job, item } => Some((*job, item)),
            Piece::Run { .. } => None,
        }
    }

    /// Takes the first item.
    pub(crate) fn pop_front(&mut self) -> Option<(JobId, Item)> {
        self.remove(0)
    }

    /// Takes the item at position `at`.
    pub(crate) fn remove(&mut self, at: usize) -> Option<(JobId, Item)> {
        if at >= self.len {
            return None;
        }
        let first = self.cut_at(at);
        self.cut_at(at + 1);
        let piece = self.pieces.remove(first)?;
        self.len -= 1;
        piece.into_items().next()
    }

    /// Drops the first `count` items.
    pub(crate) fn drain_front(&mut self, count: usize) {
        let count = count.min(self.len);
        let end = self.cut_at(count);
        self.pieces.drain(..end);
        self.len -= count;
    }

    /// Takes the items from position `at` on.
    pub(crate) fn split_off(&mut self, at: usize) -> Items {
        let at = at.min(self.len);
        let first = self.cut_at(at);
        let pieces = self.pieces.split_off(first);
        let len = self.len - at;
        self.len = at;
        Items { pieces, len }
    }

    /// Every item on its own, in order.
    pub(crate) fn into_items(self) -> impl Iterator<Item = (JobId, Item)> {
        self.pieces.into_iter().flat_map(Piece::into_items)
    }

    /// Every item on its own, now suspects.
    pub(crate) fn into_suspects(self) -> Items {
        let mut suspects = Items::default();
        for (job, mut item) in self.into_items() {
            item.suspect = true;
            suspects.push_piece_back(Piece::One { job, item });
        }
        suspects
    }

    /// Moves up to `most` items from the front to the back of `into`, as one chunk: all
    /// suspects or none, within `room` bytes as a chunk carries them (but at least one item);
    /// how many moved.
    pub(crate) fn move_chunk(&mut self, into: &mut Items, most: usize, room: usize) -> usize {
        let Some(suspect) = self.front().map(|head| head.suspect) else {
            return 0;
        };
        let (mut moved, mut bytes) = (0, 0);
        while moved < most {
            let Some(piece) = self.pieces.front_mut() else {
                break;
            };
            if piece.head(0).suspect != suspect {
                break;
            }
            let fit = piece.fitting(most - moved, room.saturating_sub(bytes), moved == 0);
            if fit == 0 {
                break;
            }
            let whole = fit == piece.len();
            let taken = if whole {
                self.pieces.pop_front()
            } else {
                Some(piece.split_front(fit))
            };
            let Some(taken) = taken else {
                break;
            };
            self.len -= fit;
            moved += fit;
            bytes += taken.wire_len();
            into.push_piece_back(taken);
            if !whole {
                break;
            }
        }
        moved
    }

    /// The `count` items from position `start`, when all are `job`'s.
    pub(crate) fn chunk(&self, job: JobId, start: usize, count: usize) -> Option<ChunkItems<'_>> {
        let end = start.checked_add(count)?;
        if end > self.len {
            return None;
        }
        let mut parts = Vec::new();
        let mut at = 0;
        for piece in &self.pieces {
            let (from, to) = (at.max(start), (at + piece.len()).min(end));
            if from < to {
                if piece.job() != job {
                    return None;
                }
                parts.push(match piece {
                    Piece::Run { batch, span, .. } => {
                        let first = span.start + from - at;
                        Part::Run(batch, first..first + (to - from))
                    }
                    Piece::One { item, .. } => Part::One(item),
                });
            }
            at += piece.len();
            if at >= end {
                break;
            }
        }
        Some(ChunkItems { parts, count })
    }

    /// Makes position `at` (at most the length) the start of a piece; that piece's place.
    fn cut_at(&mut self, at: usize) -> usize {
        let mut start = 0;
        for place in 0..self.pieces.len() {
            let len = self.pieces[place].len();
            if at == start {
                return place;
            }
            if at < start + len {
                let front = self.pieces[place].split_front(at - start);
                self.pieces.insert(place, front);
                return place + 1;
            }
            start += len;
        }
        self.pieces.len()
    }
}

/// A part of a chunk: a run of a batch, or one item.
#[derive(Clone)]
enum Part<'a> {
    Run(&'a EncodedItems, Range<usize>),
    One(&'a Item),
}

/// The items of one chunk, lent where the scheduler keeps them: its worker's items in flight.
#[derive(Clone)]
pub(crate) struct ChunkItems<'a> {
    parts: Vec<Part<'a>>,
    count: usize,
}

impl<'a> ChunkItems<'a> {
    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The items, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ItemView<'a>> + Clone + use<'a> {
        self.parts.clone().into_iter().flat_map(|part| {
            let (run, one) = match part {
                Part::Run(batch, span) => (Some(span.map(move |at| batch.view(at))), None),
                Part::One(item) => (None, Some(item.view())),
            };
            run.into_iter().flatten().chain(one)
        })
    }

    /// Each item on its own, for a worker that takes them by value (a thread).
    pub(crate) fn to_items(&self) -> Vec<Item> {
        let mut items = Vec::with_capacity(self.count);
        for part in &self.parts {
            match part {
                Part::Run(batch, span) => items.extend(span.clone().map(|at| batch.item(at))),
                Part::One(item) => items.push((*item).clone()),
            }
        }
        items
    }

    /// Their size as a chunk carries them.
    pub(crate) fn wire_len(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Run(batch, span) => batch.wire(span).len(),
                Part::One(item) => item.wire_len(),
            })
            .sum()
    }

    /// Appends them as a chunk carries them: a run of a batch as the one range it is.
    pub(crate) fn write_to(&self, buffer: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Run(batch, span) => buffer.extend_from_slice(batch.wire(span)),
                Part::One(item) => put_item(buffer, item.index, &item.bytes),
            }
        }
    }
}

#[cfg(test)]
#[path = "items_tests.rs"]
mod tests;
