//! Starting a child: re-execute this binary, wait for it to connect back and prove its token,
//! then hand it its start message.
//!
//! The child is registered in the process's slot the moment it exists, under the same lock
//! `kill()` takes, so a kill can never miss a child that is being started.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use crate::child::bootstrap::{self, EXIT_NO_ENTRY_HOOK};
use crate::error::Error;
use crate::parent::exit;
use crate::parent::shared::ProcessShared;
use crate::protocol::lifecycle::{Resume, ToChild, samples_per_frame};
use crate::protocol::{self, START_OVERHEAD, Start};
use crate::timing::ProcessTimers;
use crate::transport::Connection;
use crate::transport::rendezvous::{self, Rendezvous};

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

/// Starts a child that resumes at `resume` from `state`, and returns its connection once it
/// has its start message.
pub(crate) fn launch(
    shared: &ProcessShared,
    state: &[u8],
    resume: Resume,
    timers: &ProcessTimers,
) -> Result<Arc<Connection>, Error> {
    let config = &shared.config;
    let token = rendezvous::random_hex(16)?;
    let mut rendezvous = Rendezvous::bind(config.socket_dir.as_deref())?;
    let pid = register_child(shared, &rendezvous, &token)?;
    let deadline = crate::deadline::after(Some(config.connect_timeout));
    // Only the child itself, by the kernel's word, is accepted; another process that proves
    // the token is dropped and the wait goes on.
    let accepted = rendezvous.accept_child(pid, &token, config.max_frame_bytes, deadline, || {
        child_gone(shared)
    });
    let connection = match accepted {
        Ok((connection, _)) => Arc::new(connection),
        Err(error) => return Err(abandon(shared, error)),
    };
    let sent = send_start(shared, &connection, &token, state, resume, timers);
    sent.map_err(|error| abandon(shared, error))?;
    Ok(connection)
}

/// Spawns the child and records it in the slot; refused once the process was killed.
fn register_child(
    shared: &ProcessShared,
    rendezvous: &Rendezvous,
    token: &str,
) -> Result<u32, Error> {
    let mut slot = shared.slot();
    if slot.killed {
        return Err(Error::Killed);
    }
    let mut command = command(
        rendezvous,
        token,
        shared.config.max_frame_bytes,
        shared.config.socket_dir.as_deref(),
    )?;
    // Secrets go to the child's environment, never over the socket.
    for (name, value) in &shared.config.secret_env {
        command.env(name, value.expose());
    }
    let child = command.spawn().map_err(Error::Spawn)?;
    let pid = child.id();
    slot.pid = pid;
    slot.child = Some(child);
    Ok(pid)
}

pub(crate) fn command(
    rendezvous: &Rendezvous,
    token: &str,
    max_frame: u32,
    socket_dir: Option<&std::path::Path>,
) -> Result<Command, Error> {
    let mut command = Command::new(own_executable()?);
    command
        .env(
            bootstrap::ENV_CHILD,
            bootstrap::child_variable(token, max_frame, rendezvous.address()),
        )
        .stdin(Stdio::null());
    if let Some(logs) = crate::logs::parent::child_variable(socket_dir) {
        command.env(crate::logs::ENV_LOGS, logs);
    }
    if let Some(entry) = bootstrap::test_entry_name() {
        command.args([&entry, "--exact", "--test-threads=1", "--nocapture", "-q"]);
    }
    Ok(command)
}

/// The running executable: `/proc/self/exe` on Linux, which still works when the file was
/// replaced by a rebuild.
fn own_executable() -> Result<std::path::PathBuf, Error> {
    crate::sys::own_executable().map_err(Error::Spawn)
}

/// Why to stop waiting for the child to connect: it was killed or it exited.
fn child_gone(shared: &ProcessShared) -> Option<Error> {
    let mut slot = shared.slot();
    if slot.killed {
        return Some(Error::Killed);
    }
    let child: &mut Child = slot.child.as_mut()?;
    let status = child.try_wait().ok()??;
    slot.child = None;
    let detail = if status.code() == Some(EXIT_NO_ENTRY_HOOK) {
        format!(
            "it {}: it reached user code without the entry hook",
            exit::describe_status(status)
        )
    } else {
        format!("it {} before connecting", exit::describe_status(status))
    };
    Some(Error::Bootstrap { detail })
}

/// Kills and reaps a child whose start failed, and passes the error on.
fn abandon(shared: &ProcessShared, error: Error) -> Error {
    let child = shared.slot().child.take();
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    error
}

/// Sends the start message with the proof for the child's `token`, then the timer samples so far in frames that fit the limit.
fn send_start(
    shared: &ProcessShared,
    connection: &Connection,
    token: &str,
    state: &[u8],
    resume: Resume,
    timers: &ProcessTimers,
) -> Result<(), Error> {
    let samples = timers.samples();
    let per_frame = samples_per_frame(shared.config.max_frame_bytes).max(1);
    let chunks: Vec<_> = samples.chunks(per_frame).collect();
    let start = Start {
        proof: protocol::parent_proof(token),
        role: shared.role,
        key: shared.key,
        state,
        config: shared.config.clone(),
        resume,
        sample_frames: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
    };
    connection.send(&start)?;
    for chunk in chunks {
        connection.send(&ToChild::Samples(chunk.to_vec()))?;
    }
    Ok(())
}
