//! Streaming child → parent, skprocess against a raw socket stream (a bare named pipe on
//! Windows) of the same frames, measured in the same run on the same machine:
//!
//! - `stream_small/*`: per iteration, 100 000 `u64` messages of 16 bytes on the wire.
//! - `stream_1mib/*`: per iteration, 32 messages of 1 MiB of bytes.
//!
//! Both sides keep one child for the whole group; each iteration asks it for a burst and reads
//! the burst to the end. The raw child writes length-prefixed frames of the same size, one
//! `write` per frame, and the bench reads them through a 64 KiB buffer with blocking reads,
//! as the driver of skprocess does.
//!
//! Run with `cargo bench --bench stream`.

#[allow(dead_code, reason = "the bare re-exec floor serves the other benches")]
mod floor;

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{BufReader, Read, Write};
use std::sync::LazyLock;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, measurement::WallTime,
};
use floor::Role;
use serde::Deserializer;
use serde_bytes::ByteBuf;
use skprocess::prelude::*;

/// Small messages per iteration.
const SMALL_BURST: u64 = 100_000;
/// Large messages per iteration.
const LARGE_BURST: u64 = 32;
/// Bytes of a large message's payload.
const MIB: usize = 1 << 20;
/// Set in every number told, so that `tell(u64)` puts a 16-byte frame on the wire.
const WIDE: u64 = 1 << 63;
/// A small frame: 4 bytes of length, 1 of variant, 1 of payload length, 10 of payload.
const SMALL_FRAME: usize = 16;
/// A large frame: 4 bytes of length, 1 of variant, 3 of payload length, then the payload:
/// 3 bytes of byte-string length and the bytes.
const LARGE_FRAME: usize = 4 + 1 + 3 + 3 + MIB;

/// The bytes every large message carries; the child borrows them, so telling copies them
/// only into the frame.
static PAYLOAD: LazyLock<Vec<u8>> = LazyLock::new(|| vec![7; MIB]);

/// A large message: a byte string (not a sequence) for the codec, borrowed when sent.
#[derive(Serialize, Deserialize)]
struct Chunk(
    #[serde(
        serialize_with = "serde_bytes::serialize",
        deserialize_with = "owned_bytes"
    )]
    Cow<'static, [u8]>,
);

fn owned_bytes<'de, D: Deserializer<'de>>(bytes: D) -> Result<Cow<'static, [u8]>, D::Error> {
    ByteBuf::deserialize(bytes).map(|bytes| Cow::Owned(bytes.into_vec()))
}

#[derive(Serialize, Deserialize)]
struct SmallBurst;

#[skprocess(runs = None, inbox = u64, outbox = u64)]
impl SmallBurst {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let count = ctx.listen_timeout(Duration::from_secs(1))?.unwrap_or(0);
        for i in 0..count {
            ctx.tell(WIDE | i)?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct LargeBurst;

#[skprocess(runs = None, inbox = u64, outbox = Chunk)]
impl LargeBurst {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let count = ctx.listen_timeout(Duration::from_secs(1))?.unwrap_or(0);
        for _ in 0..count {
            ctx.tell(Chunk(Cow::Borrowed(PAYLOAD.as_slice())))?;
        }
        Ok(())
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(10);
    bench_small(&mut criterion);
    bench_large(&mut criterion);
    criterion.final_summary();
}

fn bench_small(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_small");
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(SMALL_BURST));
    bench_raw(&mut group, SMALL_BURST, SMALL_FRAME);
    let handle = SmallBurst.start().unwrap();
    group.bench_function(BenchmarkId::new("skprocess", SMALL_FRAME), |b| {
        b.iter(|| {
            handle.tell(SMALL_BURST).unwrap();
            for i in 0..SMALL_BURST {
                assert_eq!(handle.listen().unwrap(), WIDE | i);
            }
        })
    });
    finish(handle);
    group.finish();
}

fn bench_large(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_1mib");
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(LARGE_BURST * MIB as u64));
    bench_raw(&mut group, LARGE_BURST, LARGE_FRAME);
    let handle = LargeBurst.start().unwrap();
    group.bench_function(BenchmarkId::new("skprocess", LARGE_FRAME), |b| {
        b.iter(|| {
            handle.tell(LARGE_BURST).unwrap();
            for _ in 0..LARGE_BURST {
                let Chunk(bytes) = handle.listen().unwrap();
                assert_eq!(black_box(bytes).len(), MIB);
            }
        })
    });
    finish(handle);
    group.finish();
}

fn finish<P: Process>(handle: Handle<P>) {
    handle.request_stop();
    let _ = handle.result();
}

/// The raw floor: a re-executed writer, read through a buffer.
fn bench_raw(group: &mut BenchmarkGroup<'_, WallTime>, count: u64, size: usize) {
    let (_listener, stream, mut child) = floor::connect(Role::Stream);
    let mut reader = BufReader::with_capacity(64 * 1024, &stream);
    let mut body = Vec::new();
    group.bench_function(BenchmarkId::new("raw_socket", size), |b| {
        b.iter(|| {
            request_frames(&stream, count, size);
            for _ in 0..count {
                read_frame(&mut reader, &mut body);
                assert_eq!(black_box(&body).len() + 4, size);
            }
        })
    });
    drop(reader);
    drop(stream);
    child.wait().unwrap();
}

/// Asks the raw child for `count` frames of `size` bytes each, prefix included.
fn request_frames(mut stream: &floor::Stream, count: u64, size: usize) {
    let mut request = [0u8; floor::child::REQUEST];
    request[..8].copy_from_slice(&count.to_le_bytes());
    request[8..].copy_from_slice(&(size as u32).to_le_bytes());
    stream.write_all(&request).unwrap();
}

fn read_frame(reader: &mut BufReader<&floor::Stream>, body: &mut Vec<u8>) {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).unwrap();
    body.resize(u32::from_le_bytes(len) as usize, 0);
    reader.read_exact(body).unwrap();
}
