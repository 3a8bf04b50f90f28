skprocess::test_support!();

#[path = "../../support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

// One `&Handle` shared by several threads at once: `listen`, `status` and `current_run` run
// concurrently while another thread waits for the lifecycle to end.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skprocess::error::Peer;
use skprocess::prelude::*;
use skprocess_user_crate::{Answer, Calculator, Op};

const LIMIT: Duration = Duration::from_secs(30);
const TICKS: u64 = 60;

/// Tells the index of each iteration to the parent.
#[derive(Default, Serialize, Deserialize)]
struct Ticker {
    sent: u64,
}

#[skprocess(runs = 60, outbox = u64)]
impl Ticker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        std::thread::sleep(Duration::from_millis(2));
        self.sent += 1;
        let run = ctx.current_run();
        ctx.tell(run)
    }

    fn result(&mut self) -> u64 {
        self.sent
    }
}

#[test]
fn one_handle_serves_listeners_observers_and_a_waiter_at_once() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Ticker::default().start().unwrap();
    let deadline = Instant::now() + LIMIT;
    let handle = &handle;
    let done = AtomicBool::new(false);
    let done = &done;
    let (received, waited, observations) = std::thread::scope(|scope| {
        let listeners: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match handle.listen_timeout(Duration::from_millis(100)) {
                            Ok(Some(run)) => got.push(run),
                            Ok(None) => assert!(Instant::now() < deadline, "no end in sight"),
                            Err(Error::Gone {
                                peer: Peer::Process,
                            }) => return got,
                            Err(other) => panic!("listen failed: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        let waiter = scope.spawn(move || {
            let ended = handle.wait_timeout(LIMIT);
            done.store(true, Ordering::SeqCst);
            ended
        });
        let observer = scope.spawn(move || {
            let (mut last_run, mut last_completed, mut observations) = (0, 0, 0);
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                let run = handle.current_run();
                let status = handle.status();
                assert!(
                    run >= last_run && run <= TICKS,
                    "current_run {last_run} -> {run}"
                );
                assert!(
                    status.completed_runs >= last_completed && status.completed_runs <= TICKS,
                    "completed_runs {last_completed} -> {}",
                    status.completed_runs
                );
                assert_eq!((status.restarts, status.lives_left), (0, 1));
                (last_run, last_completed) = (run, status.completed_runs);
                observations += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            observations
        });
        let received: Vec<Vec<u64>> = listeners
            .into_iter()
            .map(|listener| listener.join().unwrap())
            .collect();
        (received, waiter.join().unwrap(), observer.join().unwrap())
    });
    assert!(waited, "the lifecycle did not end within {LIMIT:?}");
    assert!(observations > 0);
    for got in &received {
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    }
    let mut all: Vec<u64> = received.concat();
    all.sort_unstable();
    assert_eq!(all, (0..TICKS).collect::<Vec<_>>());
    assert_eq!(handle.current_run(), TICKS);
    let status = handle.status();
    assert_eq!((status.completed_runs, status.alive), (TICKS, false));
}

#[test]
fn the_shared_handle_still_delivers_its_result() {
    let _bound = bound::within(TEST_BOUND);
    let handle = Ticker::default().start().unwrap();
    let counted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Ok(Some(_)) = handle.listen_timeout(LIMIT) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        scope.spawn(|| assert!(handle.wait_timeout(LIMIT)));
    });
    assert_eq!(counted.load(Ordering::SeqCst) as u64, TICKS);
    assert_eq!(handle.result_timeout(LIMIT).unwrap(), TICKS);
}

#[test]
fn a_library_type_takes_tells_and_listens_from_several_threads() {
    let _bound = bound::within(TEST_BOUND);
    const THREADS: i64 = 4;
    const PER_THREAD: i64 = 10;
    let total = (THREADS * PER_THREAD) as usize;
    let calculator = Calculator::default().start().unwrap();
    let deadline = Instant::now() + LIMIT;
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (calculator, answers) = (&calculator, &answers);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    calculator.tell(Op::Mul(t * 100 + i, 2)).unwrap();
                }
                while answers.lock().unwrap().len() < total {
                    assert!(Instant::now() < deadline, "answers missing");
                    if let Some(answer) = calculator
                        .listen_timeout(Duration::from_millis(20))
                        .unwrap()
                    {
                        answers.lock().unwrap().push(answer);
                    }
                }
            });
        }
    });
    let mut answers = answers.into_inner().unwrap();
    answers.sort_by_key(|a: &Answer| a.seq);
    let seqs: Vec<u64> = answers.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (0..total as u64).collect::<Vec<_>>());
    let mut values: Vec<i64> = answers.iter().map(|a| a.value).collect();
    values.sort_unstable();
    let mut expected: Vec<i64> = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |i| (t * 100 + i) * 2))
        .collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    calculator.tell(Op::Quit).unwrap();
    assert_eq!(calculator.result_timeout(LIMIT).unwrap(), total as u64);
}
