//! Property tests of the wire: frames whose length prefixes match their payloads, so the
//! fuzzing reaches the decoder instead of stopping at an implausible length.
//!
//! - intact frames of random values decode back to those values, and not with a byte more;
//! - corrupted payloads (prefixes intact) decode or are `Malformed`, never a panic, and both
//!   outcomes are seen often;
//! - a stream cut anywhere yields the frames before the cut and then exactly the `Truncated`
//!   the cut implies;
//! - a reader that returns 1..=n bytes per call, stalls (timeouts) and gets interrupted yields
//!   exactly the frames written, including frames larger than the 64 KiB read buffer.
//!
//! - hellos (the first frame of every connection, read by the same `FrameReader`) of random
//!   tokens (a hello carries nothing else: the peer's pid is the kernel's), read in choppy
//!   steps: an intact one proves exactly its token and the reader stops at its end; corrupted ones (any byte, the length prefix included, cut or padded)
//!   never panic and never prove a token other than the right one.
//!
//! About 110,000 cases in all; each property runs its own `TestRunner` so the counters of
//! what was reached can be checked once it is done.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use skprocess_runtime::wire::{self, FrameReader, HEADER_LEN, WireError};

type Value = (u64, String, Vec<u8>, Option<i32>);

/// The reader's buffer size (`READ_BUFFER` in the frame module): frames around it switch
/// between the buffered and the owned path.
const READ_BUFFER: usize = 64 * 1024;
const NO_LIMIT: u32 = u32::MAX;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A xorshift generator: a strategy draws a few integers and the bytes come from here, since
/// a strategy per byte or per character costs a hundred times more in a debug build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }

    /// ASCII, two-byte and any other characters, mixed.
    fn string(&mut self, chars: usize) -> String {
        (0..chars)
            .map(|_| {
                let x = self.next();
                let code = match x & 3 {
                    0 | 1 => (x >> 8) % 0x80,
                    2 => 0x80 + (x >> 8) % 0x780,
                    _ => (x >> 8) % 0x11_0000,
                };
                char::from_u32(code as u32).unwrap_or('\u{fffd}')
            })
            .collect()
    }
}

fn seeded(len: usize, seed: u64) -> Vec<u8> {
    Rng(seed | 1).bytes(len)
}

fn value() -> impl Strategy<Value = Value> {
    (any::<u64>(), 0..12usize, 0..24usize, any::<u64>()).prop_map(|(n, chars, len, seed)| {
        let mut rng = Rng(seed | 1);
        let text = rng.string(chars);
        let bytes = rng.bytes(len);
        let option = (seed % 3 != 0).then_some(rng.next() as i32);
        (n, text, bytes, option)
    })
}

fn small_payload() -> impl Strategy<Value = Vec<u8>> {
    (0..48usize, any::<u64>()).prop_map(|(len, seed)| seeded(len, seed))
}

/// Mostly small payloads, some right at the read buffer's edge, some several times larger.
fn any_payload() -> impl Strategy<Value = Vec<u8>> {
    let edge = READ_BUFFER - HEADER_LEN;
    prop_oneof![
        6 => small_payload(),
        1 => (edge - 2..=edge + 2, any::<u64>()).prop_map(|(len, seed)| seeded(len, seed)),
        1 => (READ_BUFFER..3 * READ_BUFFER, any::<u64>()).prop_map(|(len, seed)| seeded(len, seed)),
    ]
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// What the next `read` call of a [`Choppy`] reader does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Return at most this many bytes (at least 1).
    Bytes(usize),
    /// Fail as a read timeout does; the caller resumes.
    Stall,
    /// Fail with `Interrupted`, which the reader must retry by itself.
    Interrupt,
}

fn steps(largest: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        8 => (1..=16usize).prop_map(Step::Bytes),
        2 => (1..=largest).prop_map(Step::Bytes),
        1 => Just(Step::Stall),
        1 => Just(Step::Interrupt),
    ];
    // A cycle always moves bytes at least once, so reading always ends.
    (1..=largest, vec(step, 0..12)).prop_map(|(first, mut rest)| {
        rest.insert(0, Step::Bytes(first));
        rest
    })
}

/// A reader that follows `steps` in a cycle: short reads, timeouts and interruptions.
struct Choppy<'a> {
    data: &'a [u8],
    steps: &'a [Step],
    next: usize,
}

impl Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = self.steps[self.next % self.steps.len()];
        self.next += 1;
        match step {
            Step::Stall => Err(io::ErrorKind::WouldBlock.into()),
            Step::Interrupt => Err(io::ErrorKind::Interrupted.into()),
            Step::Bytes(most) => {
                let n = most.min(buf.len()).min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
    }
}

/// Reads every frame with a fresh reader, resuming after timeouts; the frames and how the
/// stream ended.
fn read_all<R: Read>(input: &mut R, max: u32) -> (Vec<Vec<u8>>, Result<(), WireError>) {
    read_with(&mut FrameReader::new(max), input)
}

/// Like [`read_all`] with a reader that read earlier streams to their clean end, as a
/// connection's reader does; a new `FrameReader` zeroes a 64 KiB buffer, which would dominate
/// a small case in a debug build.
fn read_with<R: Read>(
    frames: &mut FrameReader,
    reader: &mut R,
) -> (Vec<Vec<u8>>, Result<(), WireError>) {
    let mut seen = Vec::new();
    loop {
        match frames.read_frame(reader) {
            Ok(Some(frame)) => seen.push(frame.bytes().to_vec()),
            Ok(None) => return (seen, Ok(())),
            Err(e) if e.is_timeout() => {}
            Err(e) => return (seen, Err(e)),
        }
    }
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

#[test]
fn intact_frames_of_random_values_decode_back_to_them() {
    // One reader for every case, as one connection reads stream after stream.
    let reader = RefCell::new(FrameReader::new(NO_LIMIT));
    runner(31_000)
        .run(&vec(value(), 0..6), |values| {
            let mut stream = Vec::new();
            for value in &values {
                let frame = wire::encode_frame(value, NO_LIMIT).unwrap();
                let body = frame.len() - HEADER_LEN;
                let refused = wire::encode_frame(value, body as u32 - 1);
                check(matches!(refused, Err(WireError::TooLarge { .. })), || {
                    format!("a {body}-byte body passed a limit of {}", body - 1)
                })?;
                let mut padded = frame[HEADER_LEN..].to_vec();
                padded.push(0);
                let trailing = wire::decode::<Value>(&padded);
                check(matches!(trailing, Err(WireError::Malformed(_))), || {
                    format!("a trailing byte after {value:?} gave {trailing:?}")
                })?;
                stream.extend(frame);
            }
            let mut input = stream.as_slice();
            let mut reader = reader.borrow_mut();
            for value in &values {
                let decoded: Option<Value> = reader.read_message(&mut input).unwrap();
                check(decoded.as_ref() == Some(value), || {
                    format!("{value:?} came back as {decoded:?}")
                })?;
            }
            let end: Option<Value> = reader.read_message(&mut input).unwrap();
            check(end.is_none(), || format!("{end:?} after the last frame"))
        })
        .unwrap();
}

static CORRUPTED: AtomicU64 = AtomicU64::new(0);
static CORRUPTED_DECODED: AtomicU64 = AtomicU64::new(0);
static CORRUPTED_MALFORMED: AtomicU64 = AtomicU64::new(0);

#[test]
fn corrupted_payloads_decode_or_are_malformed_and_never_panic() {
    let flip = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        1..=255u8,
    );
    let flips = vec(flip, 1..4);
    let reader = RefCell::new(FrameReader::new(NO_LIMIT));
    runner(40_000)
        .run(&(vec(value(), 1..5), flips), |(values, flips)| {
            let mut payloads: Vec<Vec<u8>> =
                values.iter().map(|v| wire::encode(v).unwrap()).collect();
            let mut corrupted = vec![false; payloads.len()];
            for (frame, byte, mask) in flips {
                // Flip a byte of one payload; the length prefix is never touched.
                let frame = frame.index(payloads.len());
                let byte = byte.index(payloads[frame].len());
                payloads[frame][byte] ^= mask;
                corrupted[frame] = true;
            }
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame_of(p)).collect();
            let (frames, end) = read_with(&mut reader.borrow_mut(), &mut stream.as_slice());
            check(end.is_ok() && frames == payloads, || {
                format!("framing changed: {end:?}, {} frames", frames.len())
            })?;
            for ((frame, value), corrupted) in frames.iter().zip(&values).zip(corrupted) {
                let decoded = wire::decode::<Value>(frame);
                if !corrupted {
                    check(decoded.as_ref().ok() == Some(value), || {
                        format!("intact {value:?} decoded as {decoded:?}")
                    })?;
                    continue;
                }
                CORRUPTED.fetch_add(1, Ordering::Relaxed);
                match decoded {
                    Ok(_) => CORRUPTED_DECODED.fetch_add(1, Ordering::Relaxed),
                    Err(WireError::Malformed(_)) => {
                        CORRUPTED_MALFORMED.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(other) => {
                        return Err(TestCaseError::fail(format!("decode gave {other:?}")));
                    }
                };
            }
            Ok(())
        })
        .unwrap();
    let total = CORRUPTED.load(Ordering::Relaxed);
    let decoded = CORRUPTED_DECODED.load(Ordering::Relaxed);
    let malformed = CORRUPTED_MALFORMED.load(Ordering::Relaxed);
    eprintln!(
        "{total} corrupted frames reached the decoder: {decoded} decoded, {malformed} malformed"
    );
    assert_eq!(decoded + malformed, total);
    // Both outcomes are common: the corruption lands in every part of the message.
    assert!(
        decoded * 20 >= total && malformed * 20 >= total,
        "{decoded} / {malformed} of {total}"
    );
}

#[test]
fn a_stream_cut_anywhere_gives_the_whole_frames_then_exactly_truncated() {
    let cases = (vec(small_payload(), 1..6), any::<prop::sample::Index>());
    runner(6_000)
        .run(&cases, |(payloads, cut)| {
            check_cut(&payloads, cut, &[Step::Bytes(usize::MAX)])
        })
        .unwrap();
}

/// Checks what reading `payloads` framed and cut at `cut` gives, read through `steps`.
fn check_cut(
    payloads: &[Vec<u8>],
    cut: prop::sample::Index,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let stream: Vec<u8> = payloads.iter().flat_map(|p| frame_of(p)).collect();
    let cut = cut.index(stream.len());
    let mut input = Choppy {
        data: &stream[..cut],
        steps,
        next: 0,
    };
    let (frames, end) = read_all(&mut input, NO_LIMIT);
    // The frames that end at or before the cut, and where the cut frame begins.
    let mut start = 0;
    let mut whole = 0;
    while whole < payloads.len() && start + HEADER_LEN + payloads[whole].len() <= cut {
        start += HEADER_LEN + payloads[whole].len();
        whole += 1;
    }
    check(frames == payloads[..whole], || {
        format!("{} frames before a cut after {whole}", frames.len())
    })?;
    let got = cut - start;
    match end {
        Ok(()) => check(got == 0, || format!("a clean end {got} bytes into a frame")),
        Err(WireError::Truncated { got: g, expected }) => {
            let announced = if got >= HEADER_LEN {
                HEADER_LEN + payloads[whole].len()
            } else {
                HEADER_LEN
            };
            check(got > 0 && g == got && expected == announced, || {
                format!(
                    "Truncated {{ got: {g}, expected: {expected} }}, cut {got} bytes into a {announced}-byte frame"
                )
            })
        }
        Err(other) => Err(TestCaseError::fail(format!("{other:?} at a cut"))),
    }
}

#[test]
fn short_reads_stalls_and_interruptions_give_exactly_the_frames_written() {
    let reader = RefCell::new(FrameReader::new(64));
    runner(20_000)
        .run(
            &(vec(small_payload(), 0..8), steps(64)),
            |(payloads, steps)| {
                let stream: Vec<u8> = payloads.iter().flat_map(|p| frame_of(p)).collect();
                let mut input = Choppy {
                    data: &stream,
                    steps: &steps,
                    next: 0,
                };
                let mut reader = reader.borrow_mut();
                let (frames, end) = read_with(&mut reader, &mut input);
                if end.is_err() {
                    // Whatever went wrong, the next case starts clean.
                    *reader = FrameReader::new(64);
                }
                check(end.is_ok() && frames == payloads, || {
                    format!("{end:?}, {} of {} frames", frames.len(), payloads.len())
                })
            },
        )
        .unwrap();
}

#[test]
fn frames_larger_than_the_read_buffer_survive_short_reads_and_cuts() {
    let cases = (
        vec(any_payload(), 1..5),
        steps(3 * READ_BUFFER),
        any::<prop::sample::Index>(),
    );
    runner(300)
        .run(&cases, |(payloads, steps, cut)| {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame_of(p)).collect();
            let (frames, end) = read_all(
                &mut Choppy {
                    data: &stream,
                    steps: &steps,
                    next: 0,
                },
                NO_LIMIT,
            );
            check(end.is_ok() && frames == payloads, || {
                format!("{end:?}, {} of {} frames", frames.len(), payloads.len())
            })?;
            check_cut(&payloads, cut, &steps)
        })
        .unwrap();
}

#[test]
fn a_prefix_over_the_limit_is_too_large_and_garbage_never_panics() {
    let garbage = (0..64usize, any::<u64>()).prop_map(|(len, seed)| seeded(len, seed));
    runner(3_000)
        .run(&(garbage, 0..64u32), |(garbage, max)| {
            let (frames, end) = read_all(&mut garbage.as_slice(), max);
            check(frames.iter().all(|f| f.len() <= max as usize), || {
                format!("a frame over {max}")
            })?;
            if let Err(WireError::TooLarge { len, max: m }) = end {
                check(len > u64::from(max) && m == max, || {
                    format!("TooLarge {{ {len}, {m} }} at {max}")
                })?;
            }
            let decoded = wire::decode::<Value>(&garbage);
            check(
                matches!(decoded, Ok(_) | Err(WireError::Malformed(_))),
                || format!("{decoded:?}"),
            )?;
            let oversized = frame_of(&garbage);
            let (_, end) = read_all(&mut oversized.as_slice(), max);
            let too_large = garbage.len() > max as usize;
            check(
                matches!(end, Err(WireError::TooLarge { .. })) == too_large,
                || format!("{} bytes at a limit of {max}: {end:?}", garbage.len()),
            )
        })
        .unwrap();
}

static HELLO_PROVEN: AtomicU64 = AtomicU64::new(0);
static HELLO_REJECTED: AtomicU64 = AtomicU64::new(0);

/// How a corrupted hello is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Bytes flipped anywhere, the length prefix included.
    Flip(Vec<(prop::sample::Index, u8)>),
    /// Cut at a point.
    Cut(prop::sample::Index),
    /// Bytes appended (the prefix left as it was).
    Pad(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => vec((any::<prop::sample::Index>(), 1..=255u8), 1..4).prop_map(Damage::Flip),
        1 => any::<prop::sample::Index>().prop_map(Damage::Cut),
        1 => (1..8usize, any::<u64>()).prop_map(|(len, seed)| Damage::Pad(seeded(len, seed))),
    ]
}

/// Reads a hello through `input` the way the rendezvous does, resuming while it is
/// incomplete; the outcome and how many bytes the reader took.
fn read_hello_through(input: &mut Choppy<'_>, token: &str) -> (wire::HelloState, usize) {
    let total = input.data.len();
    let mut frames = wire::hello_reader();
    // Every cycle of steps moves bytes, so this many calls reach the end of any input.
    for _ in 0..(total + 1) * (input.steps.len() + 1) {
        match wire::read_hello(&mut frames, input, token) {
            wire::HelloState::Incomplete => {}
            done => return (done, total - input.data.len()),
        }
    }
    (wire::HelloState::Incomplete, total - input.data.len())
}

#[test]
fn hellos_prove_exactly_their_token_and_corrupted_ones_never_panic() {
    let token = || (1..40usize, any::<u64>()).prop_map(|(n, seed)| Rng(seed | 1).string(n));
    let cases = (token(), steps(16), damage(), token());
    runner(10_000)
        .run(&cases, |(right, steps, damage, wrong)| {
            let hello = wire::hello_frame(&right);
            // Intact, followed by a request that belongs to the connection's next reader.
            let mut stream = hello.clone();
            stream.extend(frame_of(b"request"));
            let mut input = Choppy {
                data: &stream,
                steps: &steps,
                next: 0,
            };
            let (state, taken) = read_hello_through(&mut input, &right);
            let fits = hello.len() - HEADER_LEN <= 256;
            match state {
                wire::HelloState::Proven(h) => check(fits && h.token == right, || {
                    format!("proved {h:?} for {right:?}")
                })?,
                other => check(!fits, || format!("an intact hello gave {other:?}"))?,
            }
            if fits {
                check(taken == hello.len(), || {
                    format!("read {taken} of a {}-byte hello", hello.len())
                })?;
            }
            // The right hello with the wrong token.
            let mut input = Choppy {
                data: &hello,
                steps: &steps,
                next: 0,
            };
            let (state, _) = read_hello_through(&mut input, &wrong);
            check(
                right == wrong || !matches!(state, wire::HelloState::Proven(_)),
                || format!("{right:?} proved {wrong:?}"),
            )?;
            // Damaged: whatever comes out, only the right token is ever proven.
            let mut damaged = hello.clone();
            match damage {
                Damage::Flip(flips) => {
                    for (at, mask) in flips {
                        let at = at.index(damaged.len());
                        damaged[at] ^= mask;
                    }
                }
                Damage::Cut(at) => damaged.truncate(at.index(damaged.len())),
                Damage::Pad(bytes) => damaged.extend(bytes),
            }
            let mut input = Choppy {
                data: &damaged,
                steps: &steps,
                next: 0,
            };
            match read_hello_through(&mut input, &right).0 {
                wire::HelloState::Proven(h) => {
                    HELLO_PROVEN.fetch_add(1, Ordering::Relaxed);
                    check(h.token == right, || format!("a damaged hello proved {h:?}"))
                }
                wire::HelloState::Rejected => {
                    HELLO_REJECTED.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                wire::HelloState::Incomplete => {
                    Err(TestCaseError::fail("an ended stream stayed incomplete"))
                }
            }
        })
        .unwrap();
    let proven = HELLO_PROVEN.load(Ordering::Relaxed);
    let rejected = HELLO_REJECTED.load(Ordering::Relaxed);
    eprintln!(
        "damaged hellos: {proven} still proved the token (bytes after it), {rejected} rejected"
    );
    // Both outcomes are reached: bytes padded after a whole hello belong to the connection, so
    // the hello still proves its token; damage inside it never does.
    assert!(proven > 0 && rejected > 0, "{proven} / {rejected}");
}
