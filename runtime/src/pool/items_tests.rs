//! Batches against the chunk's wire form, and [`Items`] against a plain deque of items under
//! random operations: the runs must be invisible.

use std::collections::VecDeque;

use super::*;

fn value(index: u64) -> Vec<u8> {
    // Lengths on both sides of the one-byte length (127, 128) and none at all.
    let len = [0, 1, 5, 127, 128, 300][(index % 6) as usize];
    vec![index as u8; len]
}

fn batch(indices: impl IntoIterator<Item = u64>) -> EncodedItems {
    let mut batch = ItemBatch::default();
    for index in indices {
        let bytes = value(index);
        let pushed = batch.push(index, |buffer| {
            buffer.extend_from_slice(&bytes);
            Ok::<(), ()>(())
        });
        assert_eq!(pushed, Ok(&bytes[..]));
    }
    batch.finish()
}

fn wire(index: u64, bytes: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    put_item(&mut wire, index, bytes);
    wire
}

#[test]
fn a_batch_holds_its_items_as_a_chunk_carries_them() {
    let mut batch = ItemBatch::default();
    let mut expected = Vec::new();
    for index in [0, 1, 2, 3, 4, 5, 300, u64::MAX, 20_000] {
        let bytes = match index {
            20_000 => vec![7; 20_000],
            _ => value(index),
        };
        let pushed = batch.push(index, |buffer| {
            buffer.extend_from_slice(&bytes);
            Ok::<(), ()>(())
        });
        assert_eq!(pushed, Ok(&bytes[..]));
        expected.extend(wire(index, &bytes));
        // A value that fails to write leaves nothing behind, nor does one taken back.
        assert_eq!(
            batch.push(9, |buffer| {
                buffer.extend_from_slice(&[1; 200]);
                Err("no")
            }),
            Err("no")
        );
        assert!(
            batch
                .push(9, |buffer| {
                    buffer.push(1);
                    Ok::<(), ()>(())
                })
                .is_ok()
        );
        batch.pop();
        assert_eq!(batch.bytes(), expected.len());
    }
    assert_eq!(batch.len(), 9);
    let items = batch.finish();
    assert_eq!(items.wire(&(0..items.len())), &expected[..]);
    assert_eq!(items.item(7).index, u64::MAX);
    assert_eq!(&*items.item(8).bytes, &[7; 20_000][..]);
    let all: Vec<u64> = items.into_items().iter().map(|item| item.index).collect();
    assert_eq!(all, [0, 1, 2, 3, 4, 5, 300, u64::MAX, 20_000]);
}

/// The plain model: (job, index, suspect, spent), each item's value being [`value`]'s.
type Model = VecDeque<(JobId, u64, bool, u32)>;

fn model_wire_len(index: u64) -> usize {
    wire(index, &value(index)).len()
}

fn assert_same(items: &Items, model: &Model) {
    assert_eq!(items.len(), model.len());
    assert_eq!(items.is_empty(), model.is_empty());
    let heads: Vec<(JobId, u64, bool)> = items
        .heads()
        .map(|head| (head.job, head.index, head.suspect))
        .collect();
    let expected: Vec<(JobId, u64, bool)> = model.iter().map(|m| (m.0, m.1, m.2)).collect();
    assert_eq!(heads, expected);
    assert_eq!(items.back_job(), model.back().map(|m| m.0));
}

/// A small deterministic generator (xorshift), so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

#[test]
fn items_kept_as_runs_behave_as_a_plain_deque_of_items() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut items = Items::default();
    let mut model = Model::new();
    let mut flight = Items::default();
    let mut flight_model = Model::new();
    let mut next = 0u64;
    for _ in 0..5_000 {
        match rng.below(9) {
            0 | 1 => {
                let job = rng.below(2) as JobId;
                let count = rng.below(12) as u64;
                items.push_batch(job, batch(next..next + count));
                model.extend((next..next + count).map(|i| (job, i, false, 0)));
                next += count;
            }
            2 => {
                let item = Item::new(next, SharedBytes::from(value(next)));
                let suspect = rng.below(2) == 0;
                let item = Item { suspect, ..item };
                items.push_front(1, item);
                model.push_front((1, next, suspect, 0));
                next += 1;
            }
            3 => {
                let at = rng.below(model.len() + 1);
                let got = items.remove(at).map(|(job, item)| (job, item.index));
                assert_eq!(got, model.remove(at).map(|m| (m.0, m.1)));
            }
            4 => {
                let count = rng.below(model.len() + 2);
                items.drain_front(count);
                model.drain(..count.min(model.len()));
            }
            5 => {
                let at = rng.below(model.len() + 1);
                let back = items.split_off(at);
                let model_back = model.split_off(at);
                assert_same(&back, &model_back);
                // Put back in front, as a requeue does.
                items.prepend(back);
                let mut joined = model_back;
                joined.extend(model.drain(..));
                model = joined;
            }
            6 => {
                if let Some((job, item)) = items.front_mut() {
                    item.spent += 1;
                    let m = &mut model[0];
                    assert_eq!((job, item.index, item.suspect), (m.0, m.1, m.2));
                    m.3 += 1;
                    assert_eq!(item.spent, m.3);
                }
            }
            7 => {
                let most = rng.below(20);
                // Often exactly the size of the first few items: the edge of the room.
                let room = match rng.below(2) {
                    0 => rng.below(2_000),
                    _ => {
                        let first = rng.below(8);
                        model.iter().take(first).map(|m| model_wire_len(m.1)).sum()
                    }
                };
                let moved = items.move_chunk(&mut flight, most, room);
                // The model: all suspects or none, within the room but at least one.
                let suspect = model.front().is_some_and(|m| m.2);
                let (mut taken, mut bytes) = (0, 0);
                while let Some(&front) = model.front() {
                    let size = model_wire_len(front.1);
                    let fits = taken == 0 || bytes + size <= room;
                    if taken >= most || front.2 != suspect || !fits {
                        break;
                    }
                    bytes += size;
                    taken += 1;
                    flight_model.extend(model.pop_front());
                }
                assert_eq!(moved, taken);
                assert_same(&flight, &flight_model);
                if rng.below(4) == 0 {
                    check_chunks(&flight, &flight_model);
                    let count = rng.below(flight_model.len() + 1);
                    flight.drain_front(count);
                    flight_model.drain(..count);
                }
            }
            _ => {
                let got = items
                    .pop_front()
                    .map(|(job, item)| (job, item.index, item.spent));
                assert_eq!(got, model.pop_front().map(|m| (m.0, m.1, m.3)));
            }
        }
        assert_same(&items, &model);
    }
    check_chunks(&items, &model);
    let suspects = items.into_suspects();
    assert!(suspects.heads().all(|head| head.suspect));
    assert_eq!(suspects.len(), model.len());
}

/// Every chunk of `items` lends the model's items and writes them as the wire form says.
fn check_chunks(items: &Items, model: &Model) {
    for start in 0..=model.len() {
        for count in [0, 1, 2, 7, model.len().saturating_sub(start)] {
            let chunk = match model.get(start) {
                Some(&(job, ..)) => items.chunk(job, start, count),
                None => items.chunk(0, start, count),
            };
            let wanted: Vec<_> = model.iter().skip(start).take(count).collect();
            let one_job = wanted.windows(2).all(|w| w[0].0 == w[1].0);
            if start + count > model.len() || !one_job {
                assert!(chunk.is_none() || wanted.is_empty() && start + count <= model.len());
                continue;
            }
            let Some(chunk) = chunk else {
                panic!("no chunk at {start} of {count}");
            };
            assert_eq!(chunk.len(), count);
            let lent: Vec<(u64, Vec<u8>, u32)> = chunk
                .iter()
                .map(|view| (view.index, view.bytes.to_vec(), view.spent))
                .collect();
            let expected: Vec<(u64, Vec<u8>, u32)> =
                wanted.iter().map(|m| (m.1, value(m.1), m.3)).collect();
            assert_eq!(lent, expected);
            let mut written = Vec::new();
            chunk.write_to(&mut written);
            let wire: Vec<u8> = wanted.iter().flat_map(|m| wire(m.1, &value(m.1))).collect();
            assert_eq!(written, wire);
            assert_eq!(chunk.wire_len(), wire.len());
            let owned: Vec<u64> = chunk.to_items().iter().map(|item| item.index).collect();
            assert_eq!(owned, wanted.iter().map(|m| m.1).collect::<Vec<_>>());
        }
    }
}
