//! The one spawn path: re-execute this binary with the bootstrap variable, wait for it to
//! connect back and prove its token, and hand it its start message, whatever its role — a
//! lifecycle child (`parent/handle.rs`), a pool worker (`pool/launch.rs`), a `run` worker or a
//! resident worker (`worker/`). The child is handed to the one reaper
//! ([`ChildProcess`]) the moment it exists.
//!
//! A caller that must be able to kill a child while it is being started (a lifecycle handle)
//! passes a [`Gate`]: the child is registered under the gate's lock, so a kill can never miss
//! a child that is being started.

use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::config::Config;
use crate::error::Error;
use crate::parent::exit::Exit;
use crate::parent::output::{self, Sink};
use crate::parent::reaper::ChildProcess;
use crate::parent::shared::ProcessShared;
use crate::protocol::bootstrap::{
    ChildVariable, ENV_CHILD, EXIT_NO_ENTRY_HOOK, TEST_ENTRY_ARGS, test_entry_name,
};
use crate::protocol::lifecycle::{Resume, ToChild, samples_per_frame};
use crate::protocol::{Role, START_OVERHEAD, Start, parent_proof};
use crate::timing::ProcessTimers;
use crate::transport::Connection;
use crate::transport::rendezvous::{self, Rendezvous};

/// A variable a feature gives every child: its name and value for a child spawned with this
/// configuration, or `None` to give none.
pub(crate) type ChildEnvironment = fn(&Config) -> Option<(&'static str, String)>;

/// The variables features give every child (the log collector's address, `logs/parent.rs`),
/// gathered at link time like the registry, so the one spawn path names no feature.
#[linkme::distributed_slice]
pub(crate) static CHILD_ENVIRONMENT: [ChildEnvironment];

/// Refuses a state that could not travel in a start message, before anything is spawned.
pub(crate) fn check_state_size(state: &[u8], max_frame: u32) -> Result<(), Error> {
    let limit = (max_frame as usize).saturating_sub(START_OVERHEAD);
    if state.len() > limit {
        return Err(Error::TooLarge {
            size: state.len() as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

/// What to start: the start message's fields. `config` also says how to start it (frame
/// limit, connect timeout, socket directory, secret environment).
pub(crate) struct Launch<'a> {
    pub(crate) role: Role,
    pub(crate) key: &'a str,
    pub(crate) state: &'a [u8],
    pub(crate) config: &'a Config,
    pub(crate) resume: Resume,
    /// Timer samples sent after the start (a lifecycle child's history).
    pub(crate) timers: Option<&'a ProcessTimers>,
}

/// Where a caller that can kill a child keeps it while it starts.
pub(crate) trait Gate {
    /// Runs `spawn` under the caller's lock and records the child it returns; refuses
    /// (without spawning) when the caller was killed.
    fn admit(
        &self,
        spawn: &mut dyn FnMut() -> Result<Arc<ChildProcess>, Error>,
    ) -> Result<Arc<ChildProcess>, Error>;
    /// Why to stop waiting for the child to connect, besides its exit (a kill).
    fn abandoned(&self) -> Option<Error>;
    /// Forgets a child whose start failed (it is killed and reaped).
    fn release(&self);
    /// Where the child's captured or logged output goes: no buffers, named as a worker.
    fn sink(&self) -> Sink {
        Sink {
            captured: None,
            process: "worker",
        }
    }
}

/// The gate of a caller that kills its children only through their [`ChildProcess`], with
/// the child's captured or logged output going to the sink it holds (a worker's handle keeps
/// the captured output; `Sink::default()` when the caller has none).
pub(crate) struct Ungated(pub(crate) Sink);

impl Gate for Ungated {
    fn admit(
        &self,
        spawn: &mut dyn FnMut() -> Result<Arc<ChildProcess>, Error>,
    ) -> Result<Arc<ChildProcess>, Error> {
        spawn()
    }

    fn abandoned(&self) -> Option<Error> {
        None
    }

    fn release(&self) {}

    fn sink(&self) -> Sink {
        self.0.clone()
    }
}

/// Starts a child and returns its connection once it has its start message (and, for a
/// lifecycle child, its timer samples), and its hold for the reaper.
pub(crate) fn spawn(
    launch: &Launch<'_>,
    gate: &dyn Gate,
) -> Result<(Connection, Arc<ChildProcess>), Error> {
    Spawned::start(launch.config, gate)?.connect(launch, gate)
}

/// A child that runs and has not connected yet: the first half of [`spawn`], for a caller
/// that wants the process before it waits for the connection (a `run` worker hands its
/// handle back at once).
pub(crate) struct Spawned {
    rendezvous: Rendezvous,
    token: String,
    child: Arc<ChildProcess>,
}

impl Spawned {
    /// Re-executes this binary with the bootstrap variable, registered through `gate` and
    /// handed to the reaper.
    pub(crate) fn start(config: &Config, gate: &dyn Gate) -> Result<Self, Error> {
        let token = rendezvous::random_hex(16)?;
        let rendezvous = Rendezvous::bind(config.socket_dir.as_deref())?;
        let child = gate.admit(&mut || {
            let mut command = command(&rendezvous, &token, config)?;
            // Secrets go to the child's environment, never over the socket.
            for (name, value) in &config.secret_env {
                command.env(name, value.expose());
            }
            let mut child = crate::sys::spawn(&mut command).map_err(Error::Spawn)?;
            let test_child = test_entry_name().is_some();
            let forwarded = output::forward(&mut child, &config.setup, &gate.sink(), test_child);
            let child = ChildProcess::watch(child)?;
            if let Err(e) = forwarded {
                child.kill_and_reap();
                return Err(Error::Spawn(e));
            }
            Ok(child)
        })?;
        Ok(Self {
            rendezvous,
            token,
            child,
        })
    }

    pub(crate) fn child(&self) -> &Arc<ChildProcess> {
        &self.child
    }

    /// Waits for the child to prove its token, and sends it its start; a child whose start
    /// failed is killed and reaped.
    pub(crate) fn connect(
        self,
        launch: &Launch<'_>,
        gate: &dyn Gate,
    ) -> Result<(Connection, Arc<ChildProcess>), Error> {
        let Self {
            mut rendezvous,
            token,
            child,
        } = self;
        let abandon = |error: Error| {
            gate.release();
            child.kill_and_reap();
            error
        };
        let max_frame = launch.config.max_frame_bytes;
        let deadline = crate::deadline::after(Some(launch.config.connect_timeout));
        // Only the child itself, by the kernel's word, is accepted; another process that
        // proves the token is dropped and the wait goes on.
        let accepted = rendezvous.accept_child(child.pid(), &token, max_frame, deadline, || {
            gate.abandoned()
                .or_else(|| child.exit().map(gone_before_connecting))
        });
        let connection = match accepted {
            Ok((connection, _)) => connection,
            Err(error) => return Err(abandon(error)),
        };
        match send_start(launch, &connection, &token) {
            Ok(()) => Ok((connection, child)),
            Err(error) => Err(abandon(error)),
        }
    }
}

/// The command that re-executes this binary as a child that connects to `rendezvous`.
/// It gets the variables of [`CHILD_ENVIRONMENT`] (its log records go to this process's
/// collector for `config`'s socket directory).
fn command(rendezvous: &Rendezvous, token: &str, config: &Config) -> Result<Command, Error> {
    let mut command = Command::new(own_executable()?);
    command
        .env(
            ENV_CHILD,
            ChildVariable::encode(token, config.max_frame_bytes, rendezvous.address()),
        )
        .stdin(Stdio::null());
    for (name, value) in CHILD_ENVIRONMENT
        .iter()
        .filter_map(|variable| variable(config))
    {
        command.env(name, value);
    }
    let test_entry = test_entry_name();
    output::configure(&mut command, &config.setup, test_entry.is_some());
    match test_entry {
        // After `--`, libtest takes the user's arguments as more name filters, never as its
        // own options; with `--exact` they match no test but one named exactly like them.
        Some(entry) if !config.setup.args.is_empty() => {
            command.arg(entry).args(TEST_ENTRY_ARGS).arg("--");
        }
        Some(entry) => {
            command.arg(entry).args(TEST_ENTRY_ARGS);
        }
        None => {}
    }
    command.args(&config.setup.args);
    Ok(command)
}

/// The running executable: `/proc/self/exe` on Linux, which still works when the file was
/// replaced by a rebuild.
fn own_executable() -> Result<std::path::PathBuf, Error> {
    crate::sys::own_executable().map_err(Error::Spawn)
}

/// The error of a child that ended before it connected.
fn gone_before_connecting(exit: Exit) -> Error {
    let unhooked =
        matches!(&exit, Exit::Status(status) if status.code() == Some(EXIT_NO_ENTRY_HOOK));
    // GNU ld on Windows drops linkme's slices, `test_support!()`'s entry among them.
    let gnu_windows = cfg!(all(windows, target_env = "gnu"));
    let detail = if unhooked && gnu_windows {
        format!(
            "it {}: it reached user code without the entry hook; on x86_64-pc-windows-gnu build \
             with RUSTFLAGS=\"-C link-arg=-Wl,--no-gc-sections\" or the linker drops it",
            exit.describe()
        )
    } else if unhooked {
        format!(
            "it {}: it reached user code without the entry hook",
            exit.describe()
        )
    } else {
        format!("it {} before connecting", exit.describe())
    };
    Error::Bootstrap { detail }
}

/// Sends the start message with the proof for the child's `token`, then the timer samples so far in frames that fit the limit.
fn send_start(launch: &Launch<'_>, connection: &Connection, token: &str) -> Result<(), Error> {
    let samples = launch
        .timers
        .map(ProcessTimers::samples)
        .unwrap_or_default();
    let per_frame = samples_per_frame(launch.config.max_frame_bytes);
    let chunks: Vec<_> = samples.frames(per_frame).collect();
    let start = Start {
        proof: parent_proof(token),
        role: launch.role,
        key: launch.key,
        state: launch.state,
        config: launch.config.clone(),
        resume: launch.resume.clone(),
        sample_frames: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
    };
    connection.send(&start)?;
    for chunk in chunks {
        connection.send(&ToChild::Samples(chunk))?;
    }
    Ok(())
}

/// Starts a lifecycle child of `shared` that resumes at `resume` from `state`, registered in
/// the process's slot, and returns its connection once it has its start message.
pub(crate) fn launch(
    shared: &ProcessShared,
    state: &[u8],
    resume: Resume,
    timers: &ProcessTimers,
) -> Result<Arc<Connection>, Error> {
    let launch = Launch {
        role: shared.role,
        key: shared.key,
        state,
        config: &shared.config,
        resume,
        timers: Some(timers),
    };
    let (connection, _child) = spawn(&launch, shared)?;
    Ok(Arc::new(connection))
}

impl Gate for ProcessShared {
    fn admit(
        &self,
        spawn: &mut dyn FnMut() -> Result<Arc<ChildProcess>, Error>,
    ) -> Result<Arc<ChildProcess>, Error> {
        let mut slot = self.slot();
        if slot.killed {
            return Err(Error::Killed);
        }
        let child = spawn()?;
        slot.pid = child.pid();
        slot.child = Some(Arc::clone(&child));
        Ok(child)
    }

    fn abandoned(&self) -> Option<Error> {
        self.slot().killed.then_some(Error::Killed)
    }

    fn release(&self) {
        self.slot().child.take();
    }

    fn sink(&self) -> Sink {
        Sink {
            captured: self.captured.clone(),
            process: self.key,
        }
    }
}
