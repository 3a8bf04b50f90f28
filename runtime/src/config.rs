//! Per-process configuration, set in the attribute and overridable before `start`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hook::{Hook, PerHook};
use crate::reconnect::Secret;

/// The builder methods of [`ChildSetup`] on a configuration that holds one in its field
/// `setup` ([`Config`], [`PoolConfig`](crate::PoolConfig)): each sets that field of `setup`.
/// `$whom` names the processes set up, for the documentation.
macro_rules! child_setup_setters {
    ($whom:literal, $config:literal) => {
        #[doc = concat!("Sets the environment variable `name` to `value` on ", $whom, " (see [`ChildSetup::env`](crate::ChildSetup::env)).")]
        pub fn env(
            mut self,
            name: impl Into<std::ffi::OsString>,
            value: impl Into<std::ffi::OsString>,
        ) -> Self {
            self.setup = self.setup.env(name, value);
            self
        }

        #[doc = concat!("Sets the working directory of ", $whom, " (see [`ChildSetup::current_dir`](crate::ChildSetup::current_dir)).")]
        pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
            self.setup = self.setup.current_dir(dir);
            self
        }

        #[doc = concat!("Adds to the extra arguments of ", $whom, " (see [`ChildSetup::args`](crate::ChildSetup::args)).")]
        pub fn args<I, A>(mut self, args: I) -> Self
        where
            I: IntoIterator<Item = A>,
            A: Into<std::ffi::OsString>,
        {
            self.setup = self.setup.args(args);
            self
        }

        #[doc = concat!("Sets where the standard output of ", $whom, " goes (see [`ChildSetup::stdout`](crate::ChildSetup::stdout)).")]
        pub fn stdout(mut self, stdout: crate::config::Stdio) -> Self {
            self.setup = self.setup.stdout(stdout);
            self
        }

        #[doc = concat!("Sets where the standard error of ", $whom, " goes (see [`ChildSetup::stderr`](crate::ChildSetup::stderr)).")]
        pub fn stderr(mut self, stderr: crate::config::Stdio) -> Self {
            self.setup = self.setup.stderr(stderr);
            self
        }

        #[doc = concat!("Replaces the whole [`setup`](", $config, "::setup).")]
        pub fn setup(mut self, setup: crate::config::ChildSetup) -> Self {
            self.setup = setup;
            self
        }
    };
}
pub(crate) use child_setup_setters;

/// Smallest [`Config::max_frame_bytes`].
const MIN_FRAME_BYTES: u32 = 64 * 1024;

/// How a process runs. Build it from [`Process::default_config`](crate::Process::default_config)
/// (the attribute's values) and adjust it before [`Process::start_with`](crate::Process::start_with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// Number of iterations before the process finishes by itself; `None` runs until stopped.
    ///
    /// Default: `Some(1)`, so a first try always terminates.
    pub runs: Option<u64>,
    /// Attempts the whole process may use: a failed `prerun`/`run`/`postrun` (error, panic,
    /// crash or timeout) costs one and retries the same iteration while any remain. At least 1.
    ///
    /// Default: 1 (no retry).
    pub lives: u32,
    /// Wall-clock budget from `start`, checked between iterations; `None` (or `Duration::MAX`)
    /// means no budget.
    ///
    /// Default: `None`.
    pub join_in: Option<Duration>,
    /// Per-hook time limits, each at least 1 ms; a limit too long for the clock (such as
    /// `Duration::MAX`) means no limit.
    ///
    /// Default: no limits.
    pub timeouts: Timeouts,
    /// Largest frame, in bytes, either side accepts on the wire; bigger frames are an error.
    /// At least 64 KiB, so that a start message always has room for its state.
    ///
    /// Default: 64 MiB.
    pub max_frame_bytes: u32,
    /// How long the parent waits for a freshly spawned child to connect and prove its token.
    ///
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// Messages the parent may [`tell`](crate::Handle::tell) before the child has read them;
    /// `tell` waits (or [`try_tell`](crate::Handle::try_tell) fails) while this many are
    /// unread. At least 1.
    ///
    /// Default: 1024.
    pub inbox_capacity: u32,
    /// Messages the child may [`tell`](crate::Ctx::tell) before the parent has read them with
    /// [`listen`](crate::Handle::listen); the child's `tell` waits while this many are unread
    /// (until [`result`](crate::Handle::result) is called, after which they are dropped). At
    /// least 1.
    ///
    /// Default: 1024.
    pub outbox_capacity: u32,
    /// Directory in which the private socket directory is created; it is removed once the
    /// child has connected. Unused on Windows, where named pipes leave no file.
    ///
    /// Default: `None`, meaning [`std::env::temp_dir`].
    pub socket_dir: Option<PathBuf>,
    /// Environment variables set on the child process when it is spawned (each start and
    /// restart), for secrets such as the passwords of live resources (see
    /// [`reconnect`](crate::reconnect)). Never serialized: they do not cross the socket.
    /// Set them with [`secret_env`](Config::secret_env).
    ///
    /// Default: none.
    #[serde(skip)]
    pub secret_env: Vec<(String, Secret)>,
    /// How the child process is set up: its environment variables, working directory, extra
    /// arguments, and where its standard output and standard error go. Never serialized.
    /// Set it with [`env`](Config::env), [`current_dir`](Config::current_dir),
    /// [`args`](Config::args), [`stdout`](Config::stdout) and [`stderr`](Config::stderr).
    ///
    /// Default: [`ChildSetup::default`] (inherit everything).
    #[serde(skip)]
    pub setup: ChildSetup,
    /// How long a thread waiting for a message ([`Handle::listen`](crate::Handle::listen) in
    /// the parent, [`Ctx::listen`](crate::Ctx::listen) in the child) keeps polling the
    /// connection before it sleeps in the kernel. A reply that comes within this time skips
    /// the wake-up of a sleeping thread (tens of microseconds on a virtual machine), at the
    /// price of a busy core while it waits.
    ///
    /// It pays only when each spinning thread has a core of its own (the listener, and the
    /// peer that answers): on a machine whose cores are all busy, spinning takes the time the
    /// other side needs to answer and makes the round trip slower. Keep it short (tens of
    /// microseconds); zero turns it off.
    ///
    /// Default: zero (off).
    pub listen_spin: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runs: Some(1),
            lives: 1,
            join_in: None,
            timeouts: Timeouts::default(),
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            inbox_capacity: 1024,
            outbox_capacity: 1024,
            socket_dir: None,
            secret_env: Vec::new(),
            setup: ChildSetup::default(),
            listen_spin: Duration::ZERO,
        }
    }
}

impl Config {
    /// Sets [`runs`](Config::runs).
    pub fn runs(mut self, runs: impl Into<Option<u64>>) -> Self {
        self.runs = runs.into();
        self
    }

    /// Sets [`lives`](Config::lives).
    pub fn lives(mut self, lives: u32) -> Self {
        self.lives = lives;
        self
    }

    /// Sets [`join_in`](Config::join_in); `Duration::MAX` removes the budget.
    pub fn join_in(mut self, budget: Duration) -> Self {
        self.join_in = (budget != Duration::MAX).then_some(budget);
        self
    }

    /// Sets the time limit of one hook; `Duration::MAX` removes it.
    pub fn timeout(mut self, hook: Hook, limit: Duration) -> Self {
        *self.timeouts.get_mut(hook) = (limit != Duration::MAX).then_some(limit);
        self
    }

    /// Whether a crash or timeout can be recovered from, so state must be checkpointed.
    pub(crate) fn needs_checkpoints(&self) -> bool {
        self.lives > 1 || self.timeouts.iter().any(|(_, limit)| limit.is_some())
    }

    /// Sets [`listen_spin`](Config::listen_spin).
    pub fn listen_spin(mut self, spin: Duration) -> Self {
        self.listen_spin = spin;
        self
    }

    /// Sets [`max_frame_bytes`](Config::max_frame_bytes).
    pub fn max_frame_bytes(mut self, bytes: u32) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets [`connect_timeout`](Config::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`inbox_capacity`](Config::inbox_capacity).
    pub fn inbox_capacity(mut self, messages: u32) -> Self {
        self.inbox_capacity = messages;
        self
    }

    /// Sets [`outbox_capacity`](Config::outbox_capacity).
    pub fn outbox_capacity(mut self, messages: u32) -> Self {
        self.outbox_capacity = messages;
        self
    }

    /// Checks the values a child could not run with.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(Error::Config {
                problem: format!(
                    "`max_frame_bytes` must be at least {MIN_FRAME_BYTES}, got {}",
                    self.max_frame_bytes
                ),
            });
        }
        let too_short = self
            .timeouts
            .iter()
            .find(|(_, limit)| limit.is_some_and(|limit| limit < Duration::from_millis(1)));
        if let Some((hook, _)) = too_short {
            return Err(Error::Config {
                problem: format!(
                    "the timeout of `{hook}` must be at least 1ms (timeouts have millisecond precision)"
                ),
            });
        }
        let at_least_one = [
            ("lives", self.lives),
            ("inbox_capacity", self.inbox_capacity),
            ("outbox_capacity", self.outbox_capacity),
        ];
        match at_least_one.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(Error::Config {
                problem: format!("`{name}` must be at least 1, got 0"),
            }),
            None => Ok(()),
        }
    }

    /// Sets the environment variable `name` to `value` on the child process only, at spawn:
    /// the way to hand a live resource its secret at start (`#[autoreconnect]` names the
    /// variable). The value never crosses the socket.
    pub fn secret_env(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.secret_env.push((name.into(), value));
        self
    }

    child_setup_setters!(
        "the child process (for a secret use `secret_env`)",
        "Config"
    );

    /// Sets [`socket_dir`](Config::socket_dir).
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }
}

/// How a child process is set up besides what skprocess itself passes it: environment
/// variables, working directory, extra arguments, and where its standard output and standard
/// error go. Every way of starting a process takes one, set up the same way: a process's
/// [`Config`] (its [`setup`](Config::setup)), a pool's workers
/// ([`PoolConfig::setup`](crate::PoolConfig::setup)), a worker ([`run_with`](crate::run_with),
/// [`WorkerResource::with_setup`](crate::WorkerResource::with_setup)).
///
/// ```
/// use skprocess_runtime::{ChildSetup, Stdio};
///
/// let setup = ChildSetup::default()
///     .env("RUST_LOG", "debug")
///     .current_dir(std::env::temp_dir())
///     .args(["--verbose"])
///     .stderr(Stdio::Capture);
/// assert_eq!(setup.args, ["--verbose"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildSetup {
    /// Environment variables set on the child process when it is spawned (each start and
    /// restart), on top of the environment it inherits from this process. They do not cross
    /// the socket. For secrets, [`Config::secret_env`] says so in its type.
    ///
    /// Default: none.
    pub env: Vec<(OsString, OsString)>,
    /// The child process's working directory. A directory that does not exist makes the spawn
    /// fail with [`Error::Spawn`].
    ///
    /// Default: `None`, meaning this process's working directory.
    pub current_dir: Option<PathBuf>,
    /// Extra command-line arguments of the child process, after the ones skprocess passes;
    /// the child reads them with [`std::env::args`]. In a test binary they follow libtest's
    /// own after a `--`, where libtest reads them as more test-name filters: an argument that
    /// is exactly the name of a test of that binary would run that test in the child too.
    ///
    /// Default: none.
    pub args: Vec<OsString>,
    /// Where the child's standard output goes.
    ///
    /// Default: [`Stdio::Inherit`].
    pub stdout: Stdio,
    /// Where the child's standard error goes.
    ///
    /// Default: [`Stdio::Inherit`].
    pub stderr: Stdio,
}

impl ChildSetup {
    /// Sets the environment variable `name` to `value` on the child process (see
    /// [`env`](ChildSetup::env)).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets [`current_dir`](ChildSetup::current_dir).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Adds to [`args`](ChildSetup::args).
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets [`stdout`](ChildSetup::stdout).
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = stdout;
        self
    }

    /// Sets [`stderr`](ChildSetup::stderr).
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = stderr;
        self
    }

    /// Whether a stream is kept in a [`CapturedOutput`](crate::CapturedOutput).
    pub(crate) fn captures_output(&self) -> bool {
        self.stdout == Stdio::Capture || self.stderr == Stdio::Capture
    }
}

/// Where a child process's standard output or standard error goes
/// ([`ChildSetup::stdout`], [`ChildSetup::stderr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stdio {
    /// To this process's own stream, as a child of `std::process::Command` does by default.
    /// A child started from a test binary goes through a filter that drops the one header
    /// line libtest prints when it starts (`running 1 test`); everything else passes.
    #[default]
    Inherit,
    /// Kept in memory, for every child of the process (restarts too), and read with
    /// [`Handle::captured`](crate::Handle::captured) — for workers, with
    /// [`Pool::captured`](crate::Pool::captured), [`Worker::captured`](crate::Worker::captured)
    /// or [`WorkerResource::captured`](crate::WorkerResource::captured).
    Capture,
    /// Each line re-emitted as a `tracing` event in this process (target
    /// `skprocess::child`, with the child's `pid`, `process` and `stream`): `INFO` for
    /// standard output, `WARN` for standard error.
    Log,
    /// Discarded.
    Null,
}

/// Time limits per hook, with millisecond precision; `None` means no limit.
///
/// A hook that overruns its limit is abandoned: the child process is ended, which no code in
/// the hook can prevent, and the run continues in a fresh child while lives remain.
pub type Timeouts = PerHook<Option<Duration>>;
