//! The raw floors shared by the benchmarks: this binary re-executed with nothing of skprocess
//! in the way, talking to the bench over a bare connection: a `std::os::unix::net::UnixStream`
//! on Unix ([`unix`]), a named pipe opened for plain blocking I/O on Windows ([`windows`]),
//! each behind the same [`Stream`] and [`Listener`].
//!
//! A re-execution is told what to do by [`ROLE`] (and [`SOCKET`], the address of the bench's
//! listener); [`run_if_floor_child`], called in `main` right after `skprocess::init()`, plays
//! the role and exits. Each role lives in [`child`].
//!
//! How the floors wait: every read blocks in the kernel (as the readers of skprocess do on
//! both sides), except the `Role::EchoSpinning` ping-pong, whose two ends poll the connection
//! for up to [`SPIN`] before they block.

pub mod child;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
pub use unix::{Listener, Stream, connect_to, read_spinning};
#[cfg(windows)]
pub use windows::{Listener, Stream, connect_to, read_spinning};

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;

/// Environment variable naming the [`Role`] of a re-execution.
const ROLE: &str = "SKPROCESS_BENCH_FLOOR";
/// Environment variable holding the path of the listener a re-execution connects to.
const SOCKET: &str = "SKPROCESS_BENCH_SOCKET";

/// How long a spinning reader polls before it blocks: the same as `Ctx::listen`.
pub const SPIN: Duration = Duration::from_micros(50);

/// What a re-execution of the bench binary does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Exits at once.
    Exit,
    /// Connects, writes its pid, then waits for the bench to hang up.
    Hello,
    /// Echoes fixed-size frames with blocking reads.
    Echo,
    /// Echoes fixed-size frames, polling for [`SPIN`] before each blocking read.
    EchoSpinning,
    /// Answers each request (count, frame size) with that many frames, one `write` each.
    Stream,
    /// Echoes whatever arrives, one `write` per `read` of up to 64 KiB.
    EchoBytes,
}

impl Role {
    const ALL: [Role; 6] = [
        Role::Exit,
        Role::Hello,
        Role::Echo,
        Role::EchoSpinning,
        Role::Stream,
        Role::EchoBytes,
    ];

    fn name(self) -> &'static str {
        match self {
            Role::Exit => "exit",
            Role::Hello => "hello",
            Role::Echo => "echo",
            Role::EchoSpinning => "echo-spinning",
            Role::Stream => "stream",
            Role::EchoBytes => "echo-bytes",
        }
    }
}

/// Criterion as every bench here configures it: 1 s of warm-up, 3 s of measurement, and
/// `samples` samples (criterion's default is 100), unless the command line says otherwise
/// (`--warm-up-time`, `--measurement-time`, `--sample-size`).
pub fn criterion(samples: usize) -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Plays the floor role this process was re-executed for, if any, and exits.
pub fn run_if_floor_child() {
    let Some(name) = std::env::var_os(ROLE) else {
        return;
    };
    let role = Role::ALL
        .into_iter()
        .find(|role| name == role.name())
        .expect("a known floor role");
    if role != Role::Exit {
        let address = std::env::var_os(SOCKET).expect("the floor's socket address");
        let stream = connect_to(&address).expect("connect to the bench");
        child::play(role, stream);
    }
    std::process::exit(0);
}

/// The executable to re-execute, found the way skprocess finds it.
fn own_executable() -> PathBuf {
    if cfg!(target_os = "linux") {
        return "/proc/self/exe".into();
    }
    std::env::current_exe().expect("the bench's own path")
}

/// A re-execution of this binary in `role`, connecting to `socket` if the role talks.
pub fn reexec(role: Role, socket: Option<&Listener>) -> Child {
    let mut command = Command::new(own_executable());
    command.env(ROLE, role.name()).stdin(Stdio::null());
    if let Some(listener) = socket {
        command.env(SOCKET, listener.address());
    }
    command.spawn().expect("re-execute the bench")
}

/// Benchmarks spawning this binary and waiting for it to exit, as `bare_reexec_exit`.
pub fn bench_bare_reexec(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.bench_function("bare_reexec_exit", |b| {
        b.iter(|| assert!(reexec(Role::Exit, None).wait().unwrap().success()))
    });
}

/// Starts a floor child in `role`; returns its listener (which replacements can connect
/// to), its connection and the child.
pub fn connect(role: Role) -> (Listener, Stream, Child) {
    let listener = Listener::bind();
    let child = reexec(role, Some(&listener));
    let stream = listener.accept();
    (listener, stream, child)
}

/// Reads what the [`Role::Hello`] child says first: its pid.
pub fn read_hello(stream: &mut Stream) -> u32 {
    let mut pid = [0u8; 4];
    stream.read_exact(&mut pid).expect("a floor child's hello");
    u32::from_le_bytes(pid)
}

/// Runs `f` with this thread — and so the threads and processes it starts — on the first CPU
/// it may use, then lets it use them all again.
#[cfg(target_os = "linux")]
#[allow(dead_code)] // only the round-trip benches pin
pub fn on_one_cpu(f: impl FnOnce()) {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set; the calls only read and write it.
    unsafe {
        let mut all: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, size, &mut all), 0);
        let Some(first) = (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &all))
        else {
            return;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(first, &mut one);
        assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
        f();
        assert_eq!(libc::sched_setaffinity(0, size, &all), 0);
    }
}

/// Pinning is Linux's `sched_setaffinity`: elsewhere the pinned rows are skipped.
#[cfg(not(target_os = "linux"))]
#[allow(dead_code)]
pub fn on_one_cpu(_f: impl FnOnce()) {}

/// `writers` bare processes each stream `count` frames of `size` bytes to this one (a reader
/// thread per writer); the time until every byte is in.
#[allow(dead_code)] // only the share and queue benches stream from several writers
pub fn raw_streams(writers: u64, count: u64, size: u32) -> Duration {
    let connections: Vec<_> = (0..writers).map(|_| connect(Role::Stream)).collect();
    let started = Instant::now();
    let readers: Vec<_> = connections
        .iter()
        .map(|(_, stream, _)| {
            let mut stream = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut request = [0u8; child::REQUEST];
                request[..8].copy_from_slice(&count.to_le_bytes());
                request[8..].copy_from_slice(&size.to_le_bytes());
                stream.write_all(&request).unwrap();
                let mut left = count * u64::from(size);
                let mut buffer = vec![0u8; 64 * 1024];
                while left > 0 {
                    let n = stream.read(&mut buffer).unwrap();
                    assert!(n > 0, "a floor writer hung up early");
                    left -= n as u64;
                }
            })
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
    let elapsed = started.elapsed();
    for (_listener, stream, mut child) in connections {
        drop(stream);
        child.wait().unwrap();
    }
    elapsed
}
