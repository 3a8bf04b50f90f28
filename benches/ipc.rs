//! skprocess against its raw floors, measured in the same run on the same machine:
//!
//! - `round_trip/*`: `tell` → `listen` through a child that echoes, against a bare local-socket
//!   ping-pong of a frame of the same size with a re-executed echo process.
//! - `spawn/*`: `start()` → `result()` of a trivial process, against a bare re-exec of this
//!   binary that exits at once.
//!
//! Run with `cargo bench --bench ipc`; each pair reports its ratio at the end.

mod floor;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Stream};
use skprocess::prelude::*;

/// Environment variable that turns this binary into the raw ping-pong's echo child.
const ECHO_ADDRESS: &str = "SKPROCESS_BENCH_ECHO";
/// Size of the frame the raw ping-pong exchanges: what `tell(u64)` puts on the wire.
const FRAME: usize = 16;

#[derive(Serialize, Deserialize)]
struct Pong;

#[skprocess(runs = None, inbox = u64, outbox = u64)]
impl Pong {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match ctx.listen(Duration::from_secs(1))? {
            Some(n) => ctx.tell(n),
            None => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Trivial;

#[skprocess]
impl Trivial {
    fn run(&mut self) {}

    fn result(&mut self) -> u8 {
        1
    }
}

fn main() {
    skprocess::init();
    floor::exit_if_floor_child();
    run_echo_if_asked();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    bench_round_trip(&mut criterion);
    bench_spawn(&mut criterion);
    criterion.final_summary();
}

fn run_echo_if_asked() {
    if let Ok(address) = std::env::var(ECHO_ADDRESS) {
        raw_echo(&address);
        std::process::exit(0);
    }
}

/// The raw floor's child: echoes fixed-size frames until the parent hangs up.
fn raw_echo(address: &str) {
    let name = address
        .to_fs_name::<GenericFilePath>()
        .expect("socket name");
    let mut stream = Stream::connect(name).expect("connect to the bench parent");
    let mut frame = [0u8; FRAME];
    while stream.read_exact(&mut frame).is_ok() {
        if stream.write_all(&frame).is_err() {
            break;
        }
    }
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    let (mut raw, mut raw_child) = start_raw_echo();
    let mut frame = [7u8; FRAME];
    group.bench_function(BenchmarkId::new("raw_local_socket", FRAME), |b| {
        b.iter(|| {
            raw.write_all(&frame).unwrap();
            raw.read_exact(&mut frame).unwrap();
        })
    });
    drop(raw);
    raw_child.wait().unwrap();

    let pong = Pong.start().unwrap();
    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("skprocess_tell_listen", FRAME), |b| {
        b.iter(|| {
            n += 1;
            pong.tell(n).unwrap();
            assert_eq!(pong.listen(None).unwrap(), Some(n));
        })
    });
    pong.stop().unwrap();
    pong.result().unwrap();
    group.finish();
}

fn start_raw_echo() -> (Stream, Child) {
    let dir = std::env::temp_dir().join(format!("skp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("raw");
    let address = path.to_str().unwrap().to_owned();
    let listener = ListenerOptions::new()
        .name(address.as_str().to_fs_name::<GenericFilePath>().unwrap())
        .create_sync()
        .unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(ECHO_ADDRESS, &address)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stream = listener.accept().unwrap();
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
    (stream, child)
}

fn bench_spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    floor::bench_bare_reexec(&mut group);
    group.bench_function("skprocess_start_result", |b| {
        b.iter(|| assert_eq!(Trivial.start().unwrap().result().unwrap(), 1))
    });
    group.finish();
}
