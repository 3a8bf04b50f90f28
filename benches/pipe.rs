//! Pipes against their raw floors, and reopening live resources against opening them
//! directly, measured in the same run:
//!
//! - `pipe_round_trip/*`: `anchor.send` → `anchor.recv` through a child whose point echoes,
//!   against the bare `UnixStream` ping-pong of 16-byte frames with a re-executed echo process
//!   (`raw_blocking`, blocking reads on both ends as the pipe does). A pipe frame of a `u64`
//!   with the top bit set is 14 bytes: 4 of length and 10 of payload.
//! - `pipe_stream_1mib/*`: a child sends bursts of 1 MiB messages through its point, against
//!   a re-executed writer of 1 MiB frames on a bare socket.
//! - `reopen/*`: `Live::reopen` (what a child does before its first hook) against opening the
//!   same resource directly: a SQLite file, and PostgreSQL when `DATABASE_URL` is set.
//!
//! Run with `cargo bench --bench pipe`.

#[allow(dead_code, reason = "the spawn floors serve the other benches")]
mod floor;

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{BufReader, Read, Write};
use std::str::FromStr;
use std::sync::LazyLock;

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, measurement::WallTime,
};
use floor::Role;
use floor::child::ECHO_FRAME;
use serde::Deserializer;
use serde_bytes::ByteBuf;
use skprocess::error::Peer;
use skprocess::prelude::*;
use skprocess::reconnect::{PostgresRecipe, Secret, SqliteRecipe};
use skprocess::{Anchor, Point};

/// Set in every number sent, so that postcard spends 10 bytes on it.
const WIDE: u64 = 1 << 63;
/// Bytes of a large message's payload.
const MIB: usize = 1 << 20;
/// Large messages per measured burst.
const LARGE_BURST: u64 = 16;
/// A raw large frame: 4 bytes of length, 3 of byte-string length, then the bytes — what the
/// pipe puts on the wire for one [`Chunk`].
const LARGE_FRAME: usize = 4 + 3 + MIB;

static PAYLOAD: LazyLock<Vec<u8>> = LazyLock::new(|| vec![7; MIB]);

/// A large message: a byte string for the codec, borrowed when sent.
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

/// Echoes every number until the anchor closes, in one `run` (the pipe, not the lifecycle,
/// is measured).
#[derive(Serialize, Deserialize)]
struct PipeEcho {
    pipe: Point<u64, u64>,
}

#[skprocess]
impl PipeEcho {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            match self.pipe.recv() {
                Ok(n) => self.pipe.send(n)?,
                Err(Error::Gone {
                    peer: Peer::PipeEnd,
                }) => return Ok(()),
                Err(other) => return Err(other),
            }
        }
    }
}

/// Sends as many 1 MiB chunks as asked, until the anchor closes, in one `run`.
#[derive(Serialize, Deserialize)]
struct PipeBurst {
    pipe: Point<Chunk, u64>,
}

#[skprocess]
impl PipeBurst {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            match self.pipe.recv() {
                Ok(count) => {
                    for _ in 0..count {
                        self.pipe.send(Chunk(Cow::Borrowed(PAYLOAD.as_slice())))?;
                    }
                }
                Err(Error::Gone {
                    peer: Peer::PipeEnd,
                }) => return Ok(()),
                Err(other) => return Err(other),
            }
        }
    }
}

fn main() {
    skprocess::init();
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(20);
    bench_round_trip(&mut criterion);
    bench_stream(&mut criterion);
    bench_reopen(&mut criterion);
    criterion.final_summary();
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipe_round_trip");
    let (_listener, mut stream, mut child) = floor::connect(Role::Echo);
    let mut frame = [7u8; ECHO_FRAME];
    group.bench_function(BenchmarkId::new("raw_blocking", ECHO_FRAME), |b| {
        b.iter(|| {
            stream.write_all(&frame).unwrap();
            stream.read_exact(&mut frame).unwrap();
        })
    });
    drop(stream);
    child.wait().unwrap();

    let (anchor, point): (Anchor<u64, u64>, _) = Pipe::pair().unwrap();
    let echo = PipeEcho { pipe: point }.start().unwrap();
    let mut n = WIDE;
    group.bench_function(BenchmarkId::new("pipe_send_recv", 14), |b| {
        b.iter(|| {
            n += 1;
            anchor.send(n).unwrap();
            assert_eq!(anchor.recv().unwrap(), n);
        })
    });
    drop(anchor);
    echo.result().unwrap();
    group.finish();
}

fn bench_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipe_stream_1mib");
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(LARGE_BURST * MIB as u64));
    bench_raw_stream(&mut group);
    let (anchor, point): (Anchor<u64, Chunk>, _) = Pipe::pair().unwrap();
    let burst = PipeBurst { pipe: point }.start().unwrap();
    group.bench_function(BenchmarkId::new("pipe", LARGE_FRAME), |b| {
        b.iter(|| {
            anchor.send(LARGE_BURST).unwrap();
            for _ in 0..LARGE_BURST {
                let Chunk(bytes) = anchor.recv().unwrap();
                assert_eq!(black_box(bytes).len(), MIB);
            }
        })
    });
    drop(anchor);
    burst.result().unwrap();
    group.finish();
}

/// The raw floor: a re-executed writer of 1 MiB frames, read through a buffer.
fn bench_raw_stream(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (_listener, stream, mut child) = floor::connect(Role::Stream);
    let mut reader = BufReader::with_capacity(64 * 1024, &stream);
    let mut body = Vec::new();
    group.bench_function(BenchmarkId::new("raw_socket", LARGE_FRAME), |b| {
        b.iter(|| {
            let mut request = [0u8; floor::child::REQUEST];
            request[..8].copy_from_slice(&LARGE_BURST.to_le_bytes());
            request[8..].copy_from_slice(&(LARGE_FRAME as u32).to_le_bytes());
            (&stream).write_all(&request).unwrap();
            for _ in 0..LARGE_BURST {
                let mut len = [0u8; 4];
                reader.read_exact(&mut len).unwrap();
                body.resize(u32::from_le_bytes(len) as usize, 0);
                reader.read_exact(&mut body).unwrap();
                assert_eq!(black_box(&body).len() + 4, LARGE_FRAME);
            }
        })
    });
    drop(reader);
    drop(stream);
    child.wait().unwrap();
}

fn bench_reopen(c: &mut Criterion) {
    let mut group = c.benchmark_group("reopen");
    let path = std::env::temp_dir().join(format!("skp-bench-{}.db", std::process::id()));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        .unwrap();
    group.bench_function("sqlite_open_directly", |b| {
        b.iter(|| rusqlite::Connection::open(&path).unwrap())
    });
    let mut live = Live::<rusqlite::Connection>::deferred(SqliteRecipe::file(&path));
    group.bench_function("sqlite_live_reopen", |b| {
        b.iter(|| live.reopen(None).unwrap())
    });
    drop(live);
    let _ = std::fs::remove_file(&path);
    if let Ok(url) = std::env::var("DATABASE_URL") {
        bench_reopen_postgres(&mut group, &url);
    }
    group.finish();
}

fn bench_reopen_postgres(group: &mut BenchmarkGroup<'_, WallTime>, url: &str) {
    let config = postgres::Config::from_str(url).unwrap();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "localhost".to_owned(),
    };
    let params = format!(
        "host={host} port={} user={} dbname={}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres"),
    );
    let secret = config
        .get_password()
        .map(|p| Secret::new(String::from_utf8_lossy(p)));
    group.bench_function("postgres_open_directly", |b| {
        b.iter(|| postgres::Client::connect(url, postgres::NoTls).unwrap())
    });
    let mut live = Live::<postgres::Client>::deferred(PostgresRecipe::new(params).unwrap());
    group.bench_function("postgres_live_reopen", |b| {
        b.iter(|| live.reopen(secret.as_ref()).unwrap())
    });
}
