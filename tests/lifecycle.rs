//! Spec scenarios SCN-01…06, 12, 13 across real child processes.

use std::time::Duration;

use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);
#[path = "support/pid.rs"]
mod pid;

/// Every wait on a child is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Doubler {
    value: u64,
}

#[skprocess]
impl Doubler {
    fn run(&mut self) {
        self.value *= 2;
    }

    fn result(&mut self) -> u64 {
        self.value
    }
}

#[test]
fn scn01_single_run_doubles_once() {
    let _bound = bound::within(TEST_BOUND);
    assert_eq!(
        Doubler { value: 5 }
            .start()
            .unwrap()
            .result_timeout(BOUND)
            .unwrap(),
        10
    );
}

#[test]
fn scn01_three_runs_double_three_times() {
    let _bound = bound::within(TEST_BOUND);
    let config = Doubler::default_config().runs(3);
    let handle = Doubler { value: 5 }.start_with(config).unwrap();
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 40);
}

#[derive(Serialize, Deserialize)]
struct Counter {
    count: u64,
}

#[skprocess(runs = 100)]
impl Counter {
    fn run(&mut self) {
        self.count += 1;
    }

    fn result(&mut self) -> u64 {
        self.count
    }
}

#[test]
fn scn02_counter_counts_every_run() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Counter { count: 0 }.start().unwrap();
    assert!(handle.wait(Duration::from_secs(30)));
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 100);
}

#[derive(Serialize, Deserialize)]
struct Accumulator {
    value: u64,
}

#[skprocess(runs = 1)]
impl Accumulator {
    fn prerun(&mut self) {
        self.value += 1;
    }
    fn run(&mut self) {
        self.value += 2;
    }
    fn postrun(&mut self) {
        self.value += 3;
    }
    fn onfinish(&mut self) {
        self.value += 4;
    }
    fn result(&mut self) -> u64 {
        self.value
    }
}

#[test]
fn scn03_hooks_accumulate_state_in_order() {
    let _bound = bound::within(TEST_BOUND);
    assert_eq!(
        Accumulator { value: 0 }
            .start()
            .unwrap()
            .result_timeout(BOUND)
            .unwrap(),
        10
    );
}

#[derive(Serialize, Deserialize, Default)]
struct DataProcessor {
    log: Vec<String>,
    batch: Vec<u32>,
    num_batches: u32,
    total_items: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct BatchSummary {
    log: Vec<String>,
    num_batches: u32,
    total_items: u32,
}

#[skprocess(runs = 3)]
impl DataProcessor {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) {
        let base = ctx.current_run() as u32 * 3;
        self.batch = (base..base + 3).collect();
        self.log(ctx, "prerun");
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.total_items += self.batch.len() as u32;
        self.log(ctx, "run");
    }

    fn postrun(&mut self, ctx: &mut Ctx<Self>) {
        self.num_batches += 1;
        self.log(ctx, "postrun");
    }

    fn onfinish(&mut self, ctx: &mut Ctx<Self>) {
        self.log(ctx, "onfinish");
    }

    fn result(&mut self) -> BatchSummary {
        BatchSummary {
            log: std::mem::take(&mut self.log),
            num_batches: self.num_batches,
            total_items: self.total_items,
        }
    }

    /// A private helper: the child runs the real type, so helpers work (suitkaise BUG-01).
    fn log(&mut self, ctx: &Ctx<Self>, hook: &str) {
        self.log.push(format!("{hook} {}", ctx.current_run()));
    }
}

#[test]
fn scn03_batches_log_every_hook_of_every_iteration() {
    let _bound = bound::within(TEST_BOUND);
    let summary = DataProcessor::default()
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    let expected: Vec<String> = [
        "prerun 0",
        "run 0",
        "postrun 0",
        "prerun 1",
        "run 1",
        "postrun 1",
        "prerun 2",
        "run 2",
        "postrun 2",
        "onfinish 3",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(summary.log, expected);
    assert_eq!((summary.num_batches, summary.total_items), (3, 9));
}

#[derive(Serialize, Deserialize, Default)]
struct SelfStopper {
    log: Vec<String>,
}

#[skprocess(runs = None)]
impl SelfStopper {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(format!("pre{}", ctx.current_run()));
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(format!("run{}", ctx.current_run()));
        if ctx.current_run() == 2 {
            ctx.stop();
        }
    }

    fn postrun(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(format!("post{}", ctx.current_run()));
    }

    fn onfinish(&mut self, ctx: &mut Ctx<Self>) {
        self.log.push(format!("finish{}", ctx.current_run()));
    }

    fn result(&mut self) -> String {
        self.log.join(" ")
    }
}

#[test]
fn scn04_stopping_inside_run_skips_postrun_of_that_iteration() {
    let _bound = bound::within(TEST_BOUND);
    let log = SelfStopper::default()
        .start()
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    assert_eq!(log, "pre0 run0 post0 pre1 run1 post1 pre2 run2 finish2");
}

#[derive(Serialize, Deserialize)]
struct TargetCounter {
    target: u64,
    count: u64,
}

#[skprocess(runs = None)]
impl TargetCounter {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        self.count += 1;
        if self.count == self.target {
            ctx.stop();
        }
    }

    fn result(&mut self) -> u64 {
        self.count
    }
}

#[test]
fn scn05_self_stop_at_target_gives_exactly_the_target() {
    let _bound = bound::within(TEST_BOUND);
    let handle = TargetCounter {
        target: 5,
        count: 0,
    }
    .start()
    .unwrap();
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 5);
}

#[derive(Serialize, Deserialize, Default)]
struct Ticker {
    ticks: u64,
    finished: bool,
}

#[skprocess(runs = None, outbox = u64)]
impl Ticker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        std::thread::sleep(Duration::from_millis(10));
        self.ticks += 1;
        ctx.tell(self.ticks)
    }

    fn onfinish(&mut self) {
        self.finished = true;
    }

    fn result(&mut self) -> (u64, bool) {
        (self.ticks, self.finished)
    }
}

#[test]
fn scn06_parent_stop_ends_an_endless_process_with_its_result() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Ticker::default().start().unwrap();
    let first = handle.listen(Duration::from_secs(10)).unwrap();
    assert_eq!(first, Some(1));
    handle.stop().unwrap();
    assert!(handle.wait(Duration::from_secs(10)));
    let (ticks, finished) = handle.result_timeout(BOUND).unwrap();
    assert!(ticks >= 1, "ticks = {ticks}");
    assert!(finished, "onfinish must run after a stop");
}

#[test]
fn scn06_stopping_a_long_bounded_run_ends_it_early() {
    let _bound = bound::within(TEST_BOUND);
    let config = Ticker::default_config().runs(1000);
    let handle = Ticker::default().start_with(config).unwrap();
    assert_eq!(handle.listen(Duration::from_secs(10)).unwrap(), Some(1));
    handle.stop().unwrap();
    let (ticks, _) = handle.result_timeout(BOUND).unwrap();
    assert!((1..=999).contains(&ticks), "ticks = {ticks}");
}

#[test]
fn current_run_follows_the_child() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Ticker::default().start().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = handle.current_run();
    while seen < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "current_run stuck at {seen}"
        );
        std::thread::sleep(Duration::from_millis(5));
        let now = handle.current_run();
        assert!(now >= seen, "current_run went back from {seen} to {now}");
        seen = now;
    }
    handle.stop().unwrap();
    let (ticks, _) = handle.result_timeout(BOUND).unwrap();
    assert!(ticks >= seen, "{ticks} ticks but current_run said {seen}");
}

#[derive(Serialize, Deserialize)]
struct Spinner;

#[skprocess(runs = None)]
impl Spinner {
    fn run(&mut self) {
        loop {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn scn12_kill_ends_a_hook_that_never_returns() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Spinner.start().unwrap();
    assert!(handle.is_alive());
    handle.kill().unwrap();
    assert!(!handle.is_alive());
    assert!(handle.wait(Duration::from_secs(0)));
    let result = handle.result_timeout(BOUND);
    assert!(matches!(result, Err(Error::Killed)), "{result:?}");
}

#[derive(Serialize, Deserialize, Default)]
struct Echo {
    pending: Option<String>,
}

#[skprocess(runs = None, inbox = String, outbox = String)]
impl Echo {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        self.pending = ctx.listen(Duration::from_secs(1))?;
        Ok(())
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        match self.pending.take() {
            Some(message) => ctx.tell(format!("echo: {message}")),
            None => Ok(()),
        }
    }
}

#[test]
fn scn13_tell_and_listen_echo_both_ways() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Echo::default().start().unwrap();
    handle.tell("hello".to_owned()).unwrap();
    let reply = handle.listen(Duration::from_secs(2)).unwrap();
    assert_eq!(reply.as_deref(), Some("echo: hello"));
    handle.stop().unwrap();
    assert!(handle.wait(Duration::from_secs(10)));
    handle.result_timeout(BOUND).unwrap();
}

#[test]
fn listen_times_out_with_none_while_the_child_is_silent() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Echo::default().start().unwrap();
    assert_eq!(handle.listen(Duration::from_millis(50)).unwrap(), None);
    handle.stop().unwrap();
    handle.result_timeout(BOUND).unwrap();
}

#[test]
fn listen_on_a_finished_child_reports_disconnection_instead_of_blocking() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Doubler { value: 1 }.start().unwrap();
    assert!(handle.wait(Duration::from_secs(10)));
    // `listen(None)` is the form under test; a thread keeps a regression from hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(handle.listen(None)));
    let heard = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listen(None) on a finished child blocked");
    assert!(matches!(heard, Err(Error::Disconnected)), "{heard:?}");
}

/// A minimal executor: parks the test thread until the future's waker fires, for at most
/// [`BOUND`].
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl std::task::Wake for ThreadWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::sync::Arc::new(ThreadWaker(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "the future did not resolve within {BOUND:?}"
        );
        std::thread::park_timeout(left);
    }
}

#[test]
fn result_async_resolves_under_any_executor() {
    let _bound = bound::within(TEST_BOUND);
    let future = Doubler { value: 21 }.start().unwrap().result_async();
    assert_eq!(block_on(future).unwrap(), 42);
}

#[test]
fn result_in_background_runs_on_its_own_thread() {
    let _bound = bound::within(TEST_BOUND);
    let join = Counter { count: 0 }
        .start()
        .unwrap()
        .result_in_background()
        .unwrap();
    let result = bound::join(join, BOUND, "the background result");
    assert_eq!(result.unwrap(), 100);
}

#[test]
fn result_timeout_kills_a_process_that_overruns() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Spinner.start().unwrap();
    #[cfg(target_os = "linux")]
    let pid = handle.pid();
    let error = handle
        .result_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(error, Error::ResultTimeout(_)), "{error:?}");
    #[cfg(target_os = "linux")]
    assert!(pid::reaped(pid), "child {pid} survived the timeout");
}
