//! skprocess against its raw floors, measured in the same run on the same machine:
//!
//! - `round_trip/*`: `tell` → `listen` through a child that echoes, against a bare
//!   `UnixStream` ping-pong (a bare named pipe on Windows) of frames of the same size (16
//!   bytes) with a re-executed echo process. `raw_blocking` blocks in `read` on both ends, as the socket readers of skprocess
//!   do; `raw_spinning` polls the socket for 50 µs before blocking, on both ends, as
//!   `skprocess_tell_listen_spinning` does with `Config::listen_spin` at 50 µs. The
//!   `*_pinned` rows run the bench, its threads and its children on one CPU (Linux), so no
//!   message waits for a wake-up on another vCPU.
//! - `spawn/*`: `start()` → `result()` of a trivial process, against a bare re-exec of this
//!   binary that exits at once, and one that also connects back and says hello first.
//!
//! Run with `cargo bench --bench ipc`.

mod floor;

use std::io::{Read, Write};
use std::time::Duration;

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, measurement::WallTime};
use floor::Role;
use floor::child::ECHO_FRAME;
use skprocess::prelude::*;

/// Set in every number told, so that postcard spends 10 bytes on it and `tell(u64)` puts a
/// frame of [`ECHO_FRAME`] bytes on the wire: 4 of length, 1 of variant, 1 of payload
/// length, 10 of payload.
const WIDE: u64 = 1 << 63;

#[derive(Serialize, Deserialize)]
struct Pong;

#[skprocess(runs = None, inbox = u64, outbox = u64)]
impl Pong {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match ctx.listen_timeout(Duration::from_secs(1))? {
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
    floor::run_if_floor_child();
    let mut criterion = floor::criterion(100);
    bench_round_trip(&mut criterion);
    bench_spawn(&mut criterion);
    criterion.final_summary();
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    bench_raw_ping_pong(&mut group, Role::Echo, "raw_blocking", |s, buf| {
        s.read_exact(buf)
    });
    bench_raw_ping_pong(
        &mut group,
        Role::EchoSpinning,
        "raw_spinning",
        floor::read_spinning,
    );
    bench_tell_listen(&mut group, "skprocess_tell_listen", Duration::ZERO);
    bench_tell_listen(&mut group, "skprocess_tell_listen_spinning", floor::SPIN);
    floor::on_one_cpu(|| {
        bench_raw_ping_pong(&mut group, Role::Echo, "raw_blocking_pinned", |s, buf| {
            s.read_exact(buf)
        });
        bench_tell_listen(&mut group, "skprocess_tell_listen_pinned", Duration::ZERO);
    });
    group.finish();
}

fn bench_raw_ping_pong(
    group: &mut BenchmarkGroup<'_, WallTime>,
    role: Role,
    name: &str,
    read: impl Fn(&mut floor::Stream, &mut [u8]) -> std::io::Result<()>,
) {
    let (_listener, mut stream, mut child) = floor::connect(role);
    let mut frame = [7u8; ECHO_FRAME];
    group.bench_function(BenchmarkId::new(name, ECHO_FRAME), |b| {
        b.iter(|| {
            stream.write_all(&frame).unwrap();
            read(&mut stream, &mut frame).unwrap();
        })
    });
    drop(stream);
    child.wait().unwrap();
}

/// `tell` → `listen` through an echoing child; `spin` is [`Config::listen_spin`] on both sides.
fn bench_tell_listen(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, spin: Duration) {
    let pong = Pong
        .start_with(Pong::default_config().listen_spin(spin))
        .unwrap();
    let mut n = WIDE;
    group.bench_function(BenchmarkId::new(name, ECHO_FRAME), |b| {
        b.iter(|| {
            n += 1;
            pong.tell(n).unwrap();
            assert_eq!(pong.listen().unwrap(), n);
        })
    });
    pong.request_stop();
    pong.result().unwrap();
}

fn bench_spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    floor::bench_bare_reexec(&mut group);
    group.bench_function("bare_reexec_hello", |b| {
        let listener = floor::Listener::bind();
        b.iter(|| {
            let mut child = floor::reexec(Role::Hello, Some(&listener));
            let mut stream = listener.accept();
            assert_eq!(floor::read_hello(&mut stream), child.id());
            drop(stream);
            assert!(child.wait().unwrap().success());
        })
    });
    group.bench_function("skprocess_start_result", |b| {
        b.iter(|| assert_eq!(Trivial.start().unwrap().result().unwrap(), 1))
    });
    group.finish();
}
