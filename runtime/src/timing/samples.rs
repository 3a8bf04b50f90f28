//! Timer samples on their way from a child to its parent: which timer each belongs to
//! ([`Slot`]), the samples recorded and not sent yet ([`SampleBuffer`]), and their packed form
//! on the connection ([`PackedSamples`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hook::Hook;

/// Which process timer a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Slot {
    Hook(Hook),
    FullRun,
}

impl Slot {
    /// The byte that names the slot in [`PackedSamples`].
    fn to_byte(self) -> u8 {
        match self {
            Slot::Hook(Hook::Prerun) => 0,
            Slot::Hook(Hook::Run) => 1,
            Slot::Hook(Hook::Postrun) => 2,
            Slot::Hook(Hook::Onfinish) => 3,
            Slot::Hook(Hook::Result) => 4,
            Slot::Hook(Hook::Error) => 5,
            Slot::FullRun => 6,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Slot::Hook(Hook::Prerun),
            1 => Slot::Hook(Hook::Run),
            2 => Slot::Hook(Hook::Postrun),
            3 => Slot::Hook(Hook::Onfinish),
            4 => Slot::Hook(Hook::Result),
            5 => Slot::Hook(Hook::Error),
            6 => Slot::FullRun,
            _ => return None,
        })
    }
}

/// Marks, in the first byte of a packed sample, one too long for a u64 of nanoseconds.
const LONG: u8 = 0x80;

/// Timer samples as they cross a connection: per sample, one byte naming its timer, then its
/// length in nanoseconds as a little-endian u64 (9 bytes); a sample of 584 years or more
/// sets [`LONG`] in the first byte and takes its seconds (u64) and nanoseconds (u32)
/// instead (13 bytes). Every iteration records four samples, and serde's
/// `(Slot, Duration)` cost over 100 instructions a sample on each side of the connection.
/// Deserializing checks every sample, so [`iter`](PackedSamples::iter) never meets a
/// malformed one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct PackedSamples<'a>(#[serde(with = "serde_bytes")] &'a [u8]);

impl<'a> PackedSamples<'a> {
    /// The samples in order; stops at the first malformed one (none, once deserialized).
    pub(crate) fn iter(self) -> impl Iterator<Item = (Slot, Duration)> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (sample, used) = unpack(rest)?;
            rest = &rest[used..];
            Some(sample)
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PackedSamples<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: &'de [u8] = serde_bytes::deserialize(deserializer)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some((_, used)) = unpack(rest) else {
                return Err(serde::de::Error::custom("malformed timer sample"));
            };
            rest = &rest[used..];
        }
        Ok(Self(bytes))
    }
}

/// The first sample of `bytes` and the bytes it took; `None` when malformed or cut short.
fn unpack(bytes: &[u8]) -> Option<((Slot, Duration), usize)> {
    let (&tag, rest) = bytes.split_first()?;
    let slot = Slot::from_byte(tag & !LONG)?;
    let sample = if tag & LONG == 0 {
        Duration::from_nanos(u64::from_le_bytes(*rest.first_chunk()?))
    } else {
        let (secs, rest) = rest.split_first_chunk()?;
        let nanos = u32::from_le_bytes(*rest.first_chunk()?);
        if nanos >= 1_000_000_000 {
            return None;
        }
        Duration::new(u64::from_le_bytes(*secs), nanos)
    };
    let used = if tag & LONG == 0 { 9 } else { 13 };
    Some(((slot, sample), used))
}

/// Samples recorded and not sent yet, packed as [`PackedSamples`].
#[derive(Debug, Default)]
pub(crate) struct SampleBuffer {
    bytes: Vec<u8>,
    len: usize,
}

impl SampleBuffer {
    pub(crate) fn push(&mut self, slot: Slot, sample: Duration) {
        self.len += 1;
        match u64::try_from(sample.as_nanos()) {
            Ok(nanos) => {
                let mut packed = [slot.to_byte(); 9];
                packed[1..].copy_from_slice(&nanos.to_le_bytes());
                self.bytes.extend_from_slice(&packed);
            }
            Err(_) => {
                let mut packed = [slot.to_byte() | LONG; 13];
                packed[1..9].copy_from_slice(&sample.as_secs().to_le_bytes());
                packed[9..].copy_from_slice(&sample.subsec_nanos().to_le_bytes());
                self.bytes.extend_from_slice(&packed);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every sample, in groups of at most `per_frame` (at least 1).
    pub(crate) fn frames(&self, per_frame: usize) -> impl Iterator<Item = PackedSamples<'_>> {
        let per_frame = per_frame.max(1);
        let mut rest = &self.bytes[..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // Walk `per_frame` samples by their first bytes (what `push` wrote: well formed).
            let mut end = 0;
            for _ in 0..per_frame {
                match rest.get(end) {
                    Some(tag) if tag & LONG == 0 => end += 9,
                    Some(_) => end += 13,
                    None => break,
                }
            }
            let (frame, after) = rest.split_at(end.min(rest.len()));
            rest = after;
            Some(PackedSamples(frame))
        })
    }

    /// Every sample in one group, however many.
    pub(crate) fn all(&self) -> PackedSamples<'_> {
        PackedSamples(&self.bytes)
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_samples_cross_a_connection_unchanged() {
        let samples = [
            (Slot::Hook(Hook::Prerun), Duration::ZERO),
            (Slot::Hook(Hook::Error), Duration::from_nanos(127)),
            (Slot::Hook(Hook::Run), Duration::from_nanos(128)),
            (Slot::FullRun, Duration::from_nanos(u64::MAX)),
            (
                Slot::Hook(Hook::Result),
                Duration::new(u64::MAX, 999_999_999),
            ),
        ];
        let mut buffer = SampleBuffer::default();
        for (slot, sample) in samples {
            buffer.push(slot, sample);
        }
        let encoded = crate::transport::frame::encode(&buffer.all()).unwrap();
        let decoded: PackedSamples<'_> = crate::transport::frame::decode(&encoded).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), samples);
        let frames: Vec<Vec<_>> = buffer.frames(2).map(|f| f.iter().collect()).collect();
        assert_eq!(frames, [&samples[..2], &samples[2..4], &samples[4..]]);
    }

    #[test]
    fn malformed_packed_samples_do_not_decode() {
        let nanos = 5u64.to_le_bytes();
        let unknown_slot = [[7u8].as_slice(), &nanos].concat();
        let cut_short = [[1u8].as_slice(), &nanos[..7]].concat();
        let long_cut_short = [[1 | LONG].as_slice(), &nanos, &[0; 3]].concat();
        let long_bad_nanos = [
            [1 | LONG].as_slice(),
            &nanos,
            &1_000_000_000u32.to_le_bytes(),
        ]
        .concat();
        for bytes in [unknown_slot, cut_short, long_cut_short, long_bad_nanos] {
            let encoded = crate::transport::frame::encode(&PackedSamples(&bytes)).unwrap();
            assert!(crate::transport::frame::decode::<PackedSamples<'_>>(&encoded).is_err());
        }
    }
}
