//! A crate that uses skprocess only through its public API, exactly as an outside user would.
//!
//! Every process type here is defined in a library crate — at the root, in `jobs` and in
//! `jobs::nested` — and started from this crate's integration tests, its `user_main` binary
//! and its `user_example` example. Process types register at link time, so a child (the test
//! binary or the program re-executed) finds them whichever crate or module defines them.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skprocess::prelude::*;

/// Doubles `value` once per iteration (three by default); the output is the final value.
#[derive(Debug, Serialize, Deserialize)]
pub struct Doubler {
    /// The number to double.
    pub value: u64,
}

#[skprocess(runs = 3)]
impl Doubler {
    fn run(&mut self) {
        self.value *= 2;
    }

    fn result(&mut self) -> u64 {
        self.value
    }
}

/// Code written once for any process type, as a user writes it: `Handle<P>`, `P::Output`
/// and `P::Inbox` of a `P: Process`. Starts `process`, tells it each of `messages` and
/// returns its output within `limit`.
pub fn start_tell_and_wait<P: Process>(
    process: P,
    messages: Vec<P::Inbox>,
    limit: Duration,
) -> Result<P::Output, Error> {
    let handle: Handle<P> = process.start()?;
    for message in messages {
        handle.tell(message)?;
    }
    handle.result_timeout(limit)
}

/// A hook helper written once for any process type, on its `Ctx<P>`: the run it is in.
pub fn run_of<P: Process>(ctx: &Ctx<P>) -> u64 {
    ctx.current_run()
}

/// A request for [`Calculator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Add two numbers.
    Add(i64, i64),
    /// Multiply two numbers.
    Mul(i64, i64),
    /// Stop serving; the output is the number of answers given.
    Quit,
}

/// A reply from [`Calculator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// 0 for the first answer, then counting up.
    pub seq: u64,
    /// The result of the operation.
    pub value: i64,
}

/// Answers [`Op`]s told to it with [`Answer`]s until it receives [`Op::Quit`]; the output is the
/// number of answers given.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Calculator {
    answered: u64,
}

#[skprocess(runs = None, inbox = Op, outbox = Answer)]
impl Calculator {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        let Some(op) = ctx.listen_timeout(Duration::from_millis(50))? else {
            return Ok(());
        };
        let value = match op {
            Op::Add(a, b) => a + b,
            Op::Mul(a, b) => a * b,
            Op::Quit => {
                ctx.request_stop();
                return Ok(());
            }
        };
        let seq = self.next_seq();
        ctx.tell(Answer { seq, value })
    }

    fn result(&mut self) -> u64 {
        self.answered
    }
}

impl Calculator {
    /// A private helper: children run the real type, so helpers keep working.
    fn next_seq(&mut self) -> u64 {
        self.answered += 1;
        self.answered - 1
    }
}

/// What [`Phoenix`] reports: the iterations it completed and the child that completed each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The run index of each completed iteration, in order.
    pub completed: Vec<u64>,
    /// The pid of the child that completed each iteration.
    pub pids: Vec<u32>,
}

/// A supervised worker: with `crash_first` it aborts (`SIGABRT`) on its first attempt at run
/// 0, and with `hang_second` its first attempt at run 1 overruns the 300 ms run timeout. Both
/// cost a life and restart the child from the last checkpoint; with three lives it then
/// completes all three runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Phoenix {
    /// Abort the first attempt at run 0.
    pub crash_first: bool,
    /// Overrun the timeout on the first attempt at run 1.
    pub hang_second: bool,
    completed: Vec<u64>,
    pids: Vec<u32>,
}

impl Phoenix {
    /// A worker that fails as asked, then recovers.
    pub fn new(crash_first: bool, hang_second: bool) -> Self {
        Phoenix {
            crash_first,
            hang_second,
            ..Phoenix::default()
        }
    }
}

#[skprocess(runs = 3, lives = 3, timeout(run = "300ms"))]
impl Phoenix {
    fn run(&mut self, ctx: &mut Ctx<Self>) {
        let run = run_of(ctx);
        // The state restarts from the checkpoint, so the budget tells attempts apart.
        let lives = ctx.config().lives;
        let lost = lives - ctx.lives_left();
        if self.crash_first && run == 0 && lost == 0 {
            std::process::abort();
        }
        if self.hang_second && run == 1 && lost == u32::from(self.crash_first) {
            std::thread::sleep(Duration::from_secs(5));
        }
        self.completed.push(run);
        self.pids.push(std::process::id());
    }

    fn result(&mut self) -> Recovery {
        Recovery {
            completed: std::mem::take(&mut self.completed),
            pids: std::mem::take(&mut self.pids),
        }
    }
}

/// How SIGPIPE is handled in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sigpipe {
    /// `SIG_IGN`: writes to a closed pipe fail with `EPIPE` (what the Rust runtime sets up).
    Ignored,
    /// `SIG_DFL`: writes to a closed pipe kill the process.
    Default,
    /// A handler function.
    Handled,
    /// `sigaction` failed, or this is not Unix.
    Unknown,
}

impl Sigpipe {
    /// The SIGPIPE disposition of this process right now.
    pub fn current() -> Self {
        #[cfg(unix)]
        {
            // SAFETY: a zeroed `sigaction` is a valid out-parameter, and passing a null new
            // action only reads the current disposition.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) != 0 {
                    return Sigpipe::Unknown;
                }
                match old.sa_sigaction {
                    libc::SIG_IGN => Sigpipe::Ignored,
                    libc::SIG_DFL => Sigpipe::Default,
                    _ => Sigpipe::Handled,
                }
            }
        }
        #[cfg(not(unix))]
        Sigpipe::Unknown
    }
}

/// The environment a process type's hooks see, as [`EnvProbe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvReport {
    /// The Rust name of the thread that ran the hooks.
    pub thread: Option<String>,
    /// The SIGPIPE disposition inside the hook.
    pub sigpipe: Sigpipe,
    /// Whether the bootstrap variable `SKPROCESS_CHILD` was visible inside the hook.
    pub env_visible: bool,
}

impl EnvReport {
    /// The report of the calling thread and process.
    pub fn here() -> Self {
        EnvReport {
            thread: std::thread::current().name().map(str::to_owned),
            sigpipe: Sigpipe::current(),
            env_visible: std::env::var_os(BOOTSTRAP_VARIABLE).is_some(),
        }
    }
}

/// The bootstrap variable skprocess sets for a child (and removes before user code runs).
pub const BOOTSTRAP_VARIABLE: &str = "SKPROCESS_CHILD";

impl fmt::Display for EnvReport {
    /// One line of plain text: `thread=main sigpipe=ignored env=absent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sigpipe = match self.sigpipe {
            Sigpipe::Ignored => "ignored",
            Sigpipe::Default => "default",
            Sigpipe::Handled => "handled",
            Sigpipe::Unknown => "unknown",
        };
        write!(
            f,
            "thread={} sigpipe={sigpipe} env={}",
            self.thread.as_deref().unwrap_or("<unnamed>"),
            if self.env_visible {
                "present"
            } else {
                "absent"
            }
        )
    }
}

/// Reports the environment its hooks run in; the `run` and `result` hooks must agree.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EnvProbe {
    seen_in_run: Option<EnvReport>,
}

#[skprocess]
impl EnvProbe {
    fn run(&mut self) {
        self.seen_in_run = Some(EnvReport::here());
    }

    fn result(&mut self) -> Result<EnvReport, String> {
        let in_result = EnvReport::here();
        match self.seen_in_run.take() {
            Some(in_run) if in_run == in_result => Ok(in_result),
            Some(in_run) => Err(format!("run saw `{in_run}`, result saw `{in_result}`")),
            None => Err("run did not record a report".into()),
        }
    }
}

/// How a program run by [`run_bounded`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The exit code; `None` if it was killed by a signal (or by the deadline).
    pub code: Option<i32>,
    /// Whether the deadline passed and the program was killed.
    pub timed_out: bool,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

/// Runs `program` with `args` and waits at most `timeout` for it (polling `try_wait`), killing
/// it when the time runs out.
pub fn run_bounded(program: &str, args: &[&str], timeout: Duration) -> std::io::Result<Finished> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The pipes close when the program (and anything it left behind) exits; wait a little.
    let grace = deadline.max(Instant::now()) + Duration::from_secs(5);
    let collect = |rx: mpsc::Receiver<String>| {
        rx.recv_timeout(grace.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    };
    Ok(Finished {
        code: status.code(),
        timed_out,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    rx
}

/// Runs a program from inside a hook, as a subprocess of the child, and reports how it ended
/// and whether the bootstrap variable was visible in the hook that started it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunProgram {
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    outcome: Option<(Finished, bool)>,
}

impl RunProgram {
    /// Runs `program` with `args` once, in a child.
    pub fn new(program: impl Into<String>, args: &[&str]) -> Self {
        RunProgram {
            program: program.into(),
            args: args.iter().map(|&a| a.to_owned()).collect(),
            outcome: None,
        }
    }
}

#[skprocess(timeout(run = "60s"))]
impl RunProgram {
    fn run(&mut self) -> Result<(), String> {
        let env_visible = std::env::var_os(BOOTSTRAP_VARIABLE).is_some();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let finished = run_bounded(&self.program, &args, Duration::from_secs(30))
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        self.outcome = Some((finished, env_visible));
        Ok(())
    }

    fn result(&mut self) -> Result<(Finished, bool), String> {
        self.outcome
            .take()
            .ok_or_else(|| "run did not finish".into())
    }
}

/// Longer-running jobs, one module down.
pub mod jobs {
    use skprocess::prelude::*;

    /// What [`WordCounter`] reports: a struct defined in the library, built in the child.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    pub struct Tally {
        /// Words over all lines.
        pub words: u64,
        /// Words per line, in order.
        pub per_line: Vec<u64>,
        /// The longest word (the first one of that length).
        pub longest: String,
    }

    /// Counts the words of one line per iteration; start it with as many runs as lines.
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct WordCounter {
        /// The text, one line per iteration.
        pub lines: Vec<String>,
        tally: Tally,
    }

    impl WordCounter {
        /// A counter of `lines`.
        pub fn new(lines: &[&str]) -> Self {
            WordCounter {
                lines: lines.iter().map(|&l| l.to_owned()).collect(),
                tally: Tally::default(),
            }
        }

        /// The configuration that runs one iteration per line.
        pub fn config(&self) -> Config {
            Self::default_config().runs(self.lines.len() as u64)
        }
    }

    #[skprocess]
    impl WordCounter {
        fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), String> {
            let index = ctx.current_run() as usize;
            let line = self
                .lines
                .get(index)
                .ok_or_else(|| format!("no line {index}"))?;
            let mut count = 0;
            for word in line.split_whitespace() {
                count += 1;
                if word.len() > self.tally.longest.len() {
                    self.tally.longest = word.to_owned();
                }
            }
            self.tally.words += count;
            self.tally.per_line.push(count);
            Ok(())
        }

        fn result(&mut self) -> Tally {
            std::mem::take(&mut self.tally)
        }
    }

    /// Deeper still.
    pub mod nested {
        use skprocess::prelude::*;

        /// Sums `1..=upto`, one term per iteration, and stops itself after the last term.
        #[derive(Debug, Serialize, Deserialize)]
        pub struct Summer {
            /// The last term.
            pub upto: u64,
            total: u64,
        }

        impl Summer {
            /// A summer of `1..=upto` (`upto` ≥ 1).
            pub fn new(upto: u64) -> Self {
                Summer { upto, total: 0 }
            }
        }

        #[skprocess(runs = None, join_in = "60s")]
        impl Summer {
            fn run(&mut self, ctx: &mut Ctx<Self>) {
                let term = ctx.current_run() + 1;
                self.total += term;
                if term >= self.upto {
                    ctx.request_stop();
                }
            }

            fn result(&mut self, ctx: &mut Ctx<Self>) -> (u64, u64) {
                (self.total, ctx.current_run())
            }
        }
    }
}

/// Shared state defined in the library: a scoreboard that processes update through a
/// [`Share`], with a field proxy and a method of its own.
pub mod scores {
    use skprocess::prelude::*;

    /// Points per player, and the number of games recorded.
    #[shared]
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Scoreboard {
        /// Games recorded so far.
        pub games: u64,
        /// Points per player.
        pub points: std::collections::BTreeMap<String, u64>,
    }

    #[shared]
    impl Scoreboard {
        /// Adds `points` to `player` (a fire-and-forget write).
        pub fn score(&mut self, player: String, points: u64) {
            *self.points.entry(player).or_insert(0) += points;
        }

        /// The player with the most points.
        pub fn leader(&self) -> Option<String> {
            self.points
                .iter()
                .max_by_key(|(_, points)| **points)
                .map(|(player, _)| player.clone())
        }
    }

    /// Records `games` games for `player`, one point each.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Player {
        /// The shared scoreboard.
        pub board: Share<Scoreboard>,
        /// Whose games.
        pub player: String,
        /// How many.
        pub games: u64,
    }

    #[skprocess]
    impl Player {
        fn run(&mut self) {
            for _ in 0..self.games {
                self.board.score(self.player.clone(), 1);
                self.board.games += 1;
            }
        }
    }
}

/// Functions and item types mapped by a [`Pool`] from this crate's tests:
/// plain functions defined in a library, not in the test binary that runs the pool.
pub mod pool_work {
    use skprocess::prelude::*;

    /// A line of text to measure.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Line {
        /// The line's number.
        pub number: u32,
        /// Its text.
        pub text: String,
    }

    /// How long a line is, in words and characters.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Measure {
        /// The line's number.
        pub number: u32,
        /// Words in the line.
        pub words: usize,
        /// Characters in the line.
        pub chars: usize,
    }

    /// Measures one line.
    pub fn measure(line: Line) -> Measure {
        Measure {
            number: line.number,
            words: line.text.split_whitespace().count(),
            chars: line.text.chars().count(),
        }
    }

    /// Raises `base` to `exponent`, saturating.
    pub fn power(base: u64, exponent: u32) -> u64 {
        base.saturating_pow(exponent)
    }
}

/// A [`ProcessQueue`]'s item type and handler, defined in a library.
pub mod queue_work {
    use std::io::Write;
    use std::path::PathBuf;

    use skprocess::prelude::*;

    /// A greeting to append to a file.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Greeting {
        /// The file to append to.
        pub file: PathBuf,
        /// Who to greet.
        pub name: String,
    }

    /// Appends `hello <name> from <pid>` to the greeting's file, in one write.
    pub fn greet(greeting: Greeting) {
        let line = format!("hello {} from {}\n", greeting.name, std::process::id());
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&greeting.file)
        {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Work orders carried on a `Queue` between processes: the message type lives in this
/// library, as an outside user's would.
pub mod orders {
    use skprocess::Queue;
    use skprocess::prelude::*;

    /// One order: what to price and how many.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Order {
        /// The item's name.
        pub item: String,
        /// How many.
        pub quantity: u32,
    }

    /// Prices every order until the queue's end and puts the total on `out`; the error comes
    /// back as text (a worker's result crosses processes, and `Error` does not serialize).
    pub fn price_orders(orders: Queue<Order>, out: Queue<u64>) -> Result<(), String> {
        let total = orders
            .iter()
            .map(|message| u64::from(message.data.quantity) * message.data.item.len() as u64)
            .sum();
        out.put(total).map_err(|error| error.to_string())
    }
}
