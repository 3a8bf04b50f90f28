//! Regression tests for the rebuilt runtime core: one test (or two) per finding it fixed.
//! Every wait is bounded, so a regression fails in seconds instead of hanging.
#![cfg(any(target_os = "linux", windows))]

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use skprocess::ProcessStatus;
use skprocess::prelude::*;
use skprocess::process::{PROCESS_TIMER_WINDOW, ProcessTimers, Timeouts};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;

use bound::{eventually, on_thread as within};
use pid::{reaped, running};

/// The bound on waits for an outcome.
const BOUND: Duration = Duration::from_secs(30);

// Finding 1: a plain process keeps running while the parent calls nothing.

#[derive(Serialize, Deserialize, Default)]
struct FreeCounter {
    count: u64,
    /// The longest time between two `run` calls: a child blocked on its parent shows here.
    longest_gap: Duration,
    #[serde(skip)]
    last_run: Option<Instant>,
}

#[skprocess(runs = None)]
impl FreeCounter {
    fn run(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_run.replace(now) {
            self.longest_gap = self.longest_gap.max(now - last);
        }
        self.count += 1;
    }

    fn result(&mut self) -> (u64, Duration) {
        (self.count, self.longest_gap)
    }
}

#[test]
fn f01_an_endless_process_keeps_running_while_the_parent_reads_nothing() {
    let _bound = bound::within(TEST_BOUND);
    let handle = FreeCounter::default().start().unwrap();
    let idle_from = Instant::now();
    thread::sleep(Duration::from_millis(500));
    let idle = idle_from.elapsed();
    let first = handle.current_run();
    assert!(first > 0, "no iteration reported after 500 ms");
    // A child frozen by an unread parent stops counting for good; a running one doubles its
    // count however loaded the machine is, so wait (bounded) for that rather than timing it.
    let target = first.saturating_mul(2).saturating_add(1000);
    eventually(BOUND, || handle.current_run() >= target);
    let second = handle.current_run();
    assert!(
        second >= target,
        "the child stalled while the parent was idle: {first} runs at 500 ms, {second} when the bound ran out"
    );
    handle.request_stop();
    let (count, longest_gap) = handle.result_timeout(BOUND).unwrap();
    eprintln!("runs reported: {first} at 500 ms, then {second}; longest gap {longest_gap:?}");
    assert!(
        count >= second,
        "{count} runs in the result, {second} reported"
    );
    // A child that blocks on a full socket while the parent sleeps stands still until the
    // parent reads again, most of the parent's idle time; a running one is only ever
    // descheduled briefly. The ratio is against the idle time measured in this test.
    assert!(
        longest_gap < idle / 2,
        "the child stood still for {longest_gap:?} between two runs ({count} runs) while the parent idled {idle:?}"
    );
}

// Finding 2: threads sharing a handle do not hold each other up.

#[derive(Serialize, Deserialize)]
struct Idler;

#[skprocess(runs = None, outbox = u64)]
impl Idler {
    fn run(&mut self) {
        thread::sleep(Duration::from_millis(1));
    }
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn f02_a_thread_in_wait_does_not_block_listen_or_the_getters_of_another() {
    let _bound = bound::within(TEST_BOUND);
    assert_send_sync::<Handle<Idler>>();
    let handle = Idler.start().unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            #[cfg(unix)]
            tid_tx.send(pid::current_tid()).unwrap();
            #[cfg(windows)]
            tid_tx.send(0).unwrap();
            handle.wait_timeout(BOUND)
        });
        let _tid = tid_rx.recv_timeout(BOUND).unwrap();
        #[cfg(unix)]
        assert!(
            eventually(BOUND, || pid::thread_state(_tid) == Some('S')),
            "the waiting thread never went to sleep in wait()"
        );
        // Windows shows no thread state: the waiter has long been in wait() after this.
        #[cfg(windows)]
        thread::sleep(Duration::from_millis(300));
        // The waiter waits until the process is stopped below (or BOUND): a call held up by it
        // would return only after it, so each call must return while it still waits.
        for i in 0..10 {
            let started = Instant::now();
            assert_eq!(
                handle.listen_timeout(Duration::from_millis(50)).unwrap(),
                None
            );
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(50),
                "listen(50ms) #{i} returned after {took:?}"
            );
            assert!(
                !waiter.is_finished(),
                "listen(50ms) #{i} returned only after wait() did"
            );
        }
        let quick = |name: &str, call: &dyn Fn()| {
            call();
            assert!(
                !waiter.is_finished(),
                "{name} returned only after wait() did"
            );
        };
        quick("current_run", &|| assert!(handle.current_run() < u64::MAX));
        quick("status", &|| assert!(handle.status().alive));
        quick("timers", &|| assert!(handle.timers().is_none()));
        quick("is_alive", &|| assert!(handle.is_alive()));
        handle.request_stop();
        bound::until(BOUND, "wait() returns once the process stops", || {
            waiter.is_finished()
        });
        let finished = waiter.join().unwrap();
        assert!(
            finished,
            "wait() ran into its timeout instead of seeing the process finish"
        );
    });
    handle.result_timeout(Duration::from_secs(10)).unwrap();
}

// Finding 3: a child that dies in the middle of a frame is a crash that costs a life.

#[cfg(unix)]
#[derive(Serialize, Deserialize)]
struct MidFrame {
    /// 0: write half of a frame by hand, then SIGKILL; 1: SIGKILL during a 32 MiB `tell`.
    mode: u8,
    runs_done: u32,
}

/// The child's end of its connection: the only socket a test child holds.
#[cfg(unix)]
fn connection_fd() -> i32 {
    let sockets: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            target
                .to_string_lossy()
                .starts_with("socket:")
                .then_some(fd)
        })
        .collect();
    assert_eq!(sockets.len(), 1, "expected one socket, found {sockets:?}");
    sockets[0]
}

#[cfg(unix)]
fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        assert!(n > 0, "write failed");
        bytes = &bytes[n as usize..];
    }
}

#[cfg(unix)]
#[skprocess(runs = 3, lives = 3, outbox = String)]
impl MidFrame {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let first_life = ctx.lives_left() == ctx.config().lives;
        if first_life && ctx.current_run() == 1 {
            if self.mode == 0 {
                // A header announcing 32 MiB, one MiB of it, then death: a frame cut short.
                let fd = connection_fd();
                write_fd(fd, &(32u32 << 20).to_le_bytes());
                write_fd(fd, &vec![0u8; 1 << 20]);
            } else {
                let message = "x".repeat(32 << 20);
                let tid = pid::current_tid();
                thread::spawn(move || {
                    // Die once this thread sleeps inside the write (the socket is full).
                    eventually(Duration::from_secs(2), || {
                        pid::thread_state(tid) == Some('S')
                    });
                    unsafe { libc::raise(libc::SIGKILL) };
                });
                ctx.tell(message)?;
            }
            unsafe { libc::raise(libc::SIGKILL) };
        }
        self.runs_done += 1;
        Ok(())
    }

    fn result(&mut self) -> u32 {
        self.runs_done
    }
}

#[cfg(unix)]
fn assert_restarts_after_a_cut_frame(mode: u8) {
    let handle = MidFrame { mode, runs_done: 0 }.start().unwrap();
    assert!(handle.wait_timeout(BOUND), "no outcome within 30 s");
    if mode == 0 {
        // Nothing of the cut frame may reach the parent's queue.
        let cut = handle.listen_timeout(Duration::ZERO);
        assert!(matches!(cut, Err(Error::Gone { .. })), "{cut:?}");
    }
    let status = handle.status();
    let result = handle.result_timeout(Duration::from_secs(10));
    assert!(
        !matches!(result, Err(Error::Malformed { .. })),
        "{result:?}"
    );
    assert_eq!(result.unwrap(), 3);
    assert_eq!((status.restarts, status.lives_left), (1, 2));
}

// Unix by nature (both f03): the child finds its socket in /proc and dies by SIGKILL while a
// thread sleeps in a write.
#[cfg(unix)]
#[test]
fn f03_a_crash_in_the_middle_of_a_frame_is_restarted_with_a_life() {
    let _bound = bound::within(TEST_BOUND);
    assert_restarts_after_a_cut_frame(0);
}

#[cfg(unix)]
#[test]
fn f03_a_sigkill_during_a_32_mib_tell_is_restarted_with_a_life() {
    let _bound = bound::within(TEST_BOUND);
    assert_restarts_after_a_cut_frame(1);
}

// Finding 4: once kill() returns, no child is alive and none is started.

#[derive(Serialize, Deserialize)]
struct CrashLoop;

#[skprocess(runs = None, lives = 1000)]
impl CrashLoop {
    fn run(&mut self) {
        #[cfg(unix)]
        {
            unsafe { libc::raise(libc::SIGKILL) };
        }
        // No signals on Windows: the process ends itself as a kill from outside would.
        #[cfg(windows)]
        pid::kill(std::process::id());
    }
}

#[test]
fn f04_kill_during_constant_restarts_leaves_no_child_alive() {
    let _bound = bound::within(TEST_BOUND);
    let (started, mut later) = (Instant::now(), 0);
    // Under Wine every restart is a Windows process start of about 50 ms: fewer kills there.
    let kills = if cfg!(windows) { 20 } else { 200 };
    for i in 0..kills {
        let handle = CrashLoop.start().unwrap();
        let mut seen = vec![handle.pid()];
        let restarting = eventually(Duration::from_secs(10), || {
            seen.push(handle.pid());
            handle.status().restarts >= 1
        });
        assert!(restarting, "#{i}: the crashing child was never restarted");
        // 0–5 ms spread over the iterations, so the kill lands in every phase of a restart.
        let delay = Duration::from_micros(i * 2741 % 5000);
        let until = Instant::now() + delay;
        while Instant::now() < until {
            seen.push(handle.pid());
            thread::sleep(Duration::from_micros(200));
        }
        later += u32::from(handle.status().restarts >= 2);
        handle.kill().unwrap();
        let pid = handle.pid();
        seen.push(pid);
        assert!(!handle.is_alive(), "#{i}: is_alive() right after kill()");
        let watch_until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < watch_until {
            assert_eq!(handle.pid(), pid, "#{i}: a child was started after kill()");
            assert!(!handle.is_alive(), "#{i}: a child is alive after kill()");
            let alive: Vec<_> = seen.iter().filter(|&&p| running(p)).collect();
            assert!(
                alive.is_empty(),
                "#{i}: children {alive:?} alive after kill()"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let result = handle.result_timeout(Duration::from_secs(5));
        assert!(matches!(result, Err(Error::Killed)), "#{i}: {result:?}");
    }
    // Diagnostics: how many kills found the process past its second child.
    eprintln!(
        "{kills} kills in {:?}; {later} after a further restart",
        started.elapsed()
    );
}

// Finding 5: timer samples never exceed the frame limit, on the way up or on a restart.

#[derive(Serialize, Deserialize, Default)]
struct Busy {
    count: u64,
    abort_at: Option<u64>,
}

#[skprocess(runs = 20_000)]
impl Busy {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        let first_life = ctx.lives_left() == ctx.config().lives;
        if first_life && self.abort_at == Some(ctx.current_run()) {
            std::process::abort();
        }
        self.count += 1;
    }

    fn result(&mut self) -> u64 {
        self.count
    }
}

fn run_20k_with_small_frames(lives: u32, abort_at: Option<u64>) -> (ProcessStatus, ProcessTimers) {
    let config = Busy::default_config()
        .max_frame_bytes(64 * 1024)
        .lives(lives);
    let handle = Busy { count: 0, abort_at }.start_with(config).unwrap();
    assert!(
        handle.wait_timeout(Duration::from_secs(60)),
        "20k runs not done in 60 s"
    );
    let (status, timers) = (handle.status(), handle.timers().unwrap());
    assert_eq!(
        handle.result_timeout(Duration::from_secs(10)).unwrap(),
        20_000
    );
    (status, timers)
}

#[test]
fn f05_twenty_thousand_runs_fit_a_64_kib_frame_limit() {
    let _bound = bound::within(TEST_BOUND);
    let (status, timers) = run_20k_with_small_frames(1, None);
    assert_eq!(status.completed_runs, 20_000);
    assert_eq!(timers.hooks.run.count(), PROCESS_TIMER_WINDOW);
    assert_eq!(timers.full_run.count(), PROCESS_TIMER_WINDOW);
}

#[test]
fn f05_a_restart_after_15k_runs_sends_its_timers_within_a_64_kib_limit() {
    let _bound = bound::within(TEST_BOUND);
    let (status, timers) = run_20k_with_small_frames(2, Some(15_000));
    assert_eq!((status.restarts, status.completed_runs), (1, 20_000));
    assert_eq!(timers.hooks.run.count(), PROCESS_TIMER_WINDOW);
}

// Finding 6: a type in a nested module is found by the child.

mod a {
    pub mod b {
        use skprocess::prelude::*;

        #[derive(Serialize, Deserialize)]
        pub struct Nested;

        #[skprocess]
        impl Nested {
            fn run(&mut self) {}

            fn result(&mut self) -> String {
                module_path!().to_owned()
            }
        }
    }
}

/// Same name as the nested type: the registry must tell them apart.
#[derive(Serialize, Deserialize)]
struct Nested;

#[skprocess]
impl Nested {
    fn run(&mut self) {}

    fn result(&mut self) -> String {
        "top level".to_owned()
    }
}

#[test]
fn f06_a_type_in_a_nested_module_runs_in_a_child() {
    let _bound = bound::within(TEST_BOUND);
    let nested = a::b::Nested.start().unwrap();
    let path = nested.result_timeout(BOUND).unwrap();
    assert!(path.ends_with("::a::b"), "{path}");
    let top = Nested.start().unwrap();
    assert_eq!(top.result_timeout(BOUND).unwrap(), "top level");
}

// Finding 7: the bootstrap variable never reaches user code or its subprocesses.

#[derive(Serialize, Deserialize, Default)]
struct EnvProbe {
    shell_env: String,
    own_env: Vec<String>,
}

#[skprocess]
impl EnvProbe {
    fn run(&mut self) -> Result<(), String> {
        #[cfg(unix)]
        let shell = std::process::Command::new("sh")
            .args(["-c", "env"])
            .output();
        #[cfg(windows)]
        let shell = std::process::Command::new("cmd")
            .args(["/C", "set"])
            .output();
        let output = shell.map_err(|e| e.to_string())?;
        self.shell_env = String::from_utf8_lossy(&output.stdout).into_owned();
        self.own_env = std::env::vars_os()
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        Ok(())
    }

    fn result(&mut self) -> (String, Vec<String>) {
        (
            std::mem::take(&mut self.shell_env),
            std::mem::take(&mut self.own_env),
        )
    }
}

#[test]
fn f07_hooks_and_their_subprocesses_never_see_bootstrap_variables() {
    let _bound = bound::within(TEST_BOUND);
    let handle = EnvProbe::default().start().unwrap();
    let (shell_env, own_env) = handle.result_timeout(BOUND).unwrap();
    // Windows spells it `Path`.
    let is_path = |line: &str| match cfg!(windows) {
        true => line.to_ascii_uppercase().starts_with("PATH="),
        false => line.starts_with("PATH="),
    };
    assert!(shell_env.lines().any(is_path), "{shell_env}");
    let shell = shell_env.lines().map(|line| ("a subprocess", line));
    let own = own_env.iter().map(|key| ("the hook", key.as_str()));
    let leaked: Vec<_> = shell
        .chain(own)
        .filter(|(_, v)| v.starts_with("SKPROCESS_"))
        .collect();
    assert!(
        leaked.is_empty(),
        "bootstrap variables reached user code: {leaked:?}"
    );
}

// Finding 8: dropping a pending result_async future ends the child.

#[test]
fn f08_dropping_a_pending_result_future_kills_and_reaps_the_child() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Idler.start().unwrap();
    let pid = handle.pid();
    assert!(running(pid));
    let mut future = Box::pin(handle.result_async());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(future.as_mut().poll(&mut cx), Poll::Pending));
    drop(future);
    // The idler never ends by itself: only the drop can end it, so the bound is a wait.
    bound::until(
        BOUND,
        "the child is reaped once its result future is dropped",
        || reaped(pid),
    );
}

// Finding 9: Duration::MAX means "no limit" everywhere, never a panic.

#[derive(Serialize, Deserialize, Default)]
struct Patient {
    heard: String,
}

#[skprocess(inbox = String, outbox = String)]
impl Patient {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        self.heard = ctx.listen_timeout(Duration::MAX)?.unwrap_or_default();
        Ok(())
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        ctx.tell(format!("echo: {}", self.heard))
    }

    fn result(&mut self) -> String {
        std::mem::take(&mut self.heard)
    }
}

#[test]
fn f09_duration_max_is_no_limit_for_every_wait_timeout_and_budget() {
    let _bound = bound::within(TEST_BOUND);
    let mut config = Patient::default_config().join_in(Duration::MAX);
    config.timeouts = Timeouts::from_fn(|_| Some(Duration::MAX));
    let handle = Arc::new(Patient::default().start_with(config).unwrap());
    let limit = Duration::from_secs(20);
    let h = Arc::clone(&handle);
    within(limit, "tell_timeout(MAX)", move || {
        h.tell_timeout("hi".to_owned(), Duration::MAX).unwrap()
    });
    let h = Arc::clone(&handle);
    let heard = within(limit, "listen(MAX)", move || {
        h.listen_timeout(Duration::MAX).unwrap()
    });
    assert_eq!(heard.as_deref(), Some("echo: hi"));
    let h = Arc::clone(&handle);
    assert!(within(limit, "wait(MAX)", move || h.wait_timeout(Duration::MAX)));
    assert!(eventually(limit, || Arc::strong_count(&handle) == 1));
    let handle = Arc::into_inner(handle).unwrap();
    let result = within(limit, "result_timeout(MAX)", move || {
        handle.result_timeout(Duration::MAX)
    });
    assert_eq!(result.unwrap(), "hi");
}
