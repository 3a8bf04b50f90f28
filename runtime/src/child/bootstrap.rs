//! How a re-executed binary becomes a child: find the bootstrap variable, remove it from the
//! environment before any user code runs, connect back, prove the token and read the start
//! message. What runs next depends on the role, and is chosen in `entry.rs`, the one place
//! above the child and the features (the lifecycle role runs in `engine.rs`).
//!
//! The contract with the parent (the variable, the exit codes, the hidden test's name) is in
//! `protocol/bootstrap.rs`.

use std::ffi::OsString;

use crate::child::runtime_context::{self, ChildContext};
use crate::config::Config;
use crate::error::Error;
use crate::protocol::bootstrap::{
    self as contract, ChildVariable, EXIT_PARENT_GONE, EXIT_SETUP_FAILED,
};
use crate::protocol::lifecycle::{Resume, ToChild, ToParent};
use crate::protocol::{Role, Start};
use crate::timing::ProcessTimers;
use crate::transport::frame::{self, FrameReader};
use crate::transport::{Connection, rendezvous};

/// Reads and removes the bootstrap variable, so that user code — and any process it starts —
/// never sees it.
pub(crate) fn take_child_variable() -> Option<OsString> {
    let variable = std::env::var_os(contract::ENV_CHILD)?;
    contract::mark_entered();
    // SAFETY: this runs before any user code of the child: first thing in `main`, or in the
    // hidden test while libtest's own threads only wait for it; nothing reads the environment
    // concurrently.
    unsafe { std::env::remove_var(contract::ENV_CHILD) };
    if std::env::var_os(contract::ENV_STDOUT_ON_STDIN).is_some() {
        // SAFETY: as above.
        unsafe { std::env::remove_var(contract::ENV_STDOUT_ON_STDIN) };
        // When it fails the child's output goes to the null device; nothing else changes.
        let _ = crate::sys::stdout_from_stdin();
    }
    Some(variable)
}

/// What a child needs to run, read from the start message and the frames after it.
pub(crate) struct Started {
    /// The role the start named; `entry.rs` dispatches on it.
    pub(crate) role: Role,
    pub(crate) key: String,
    pub(crate) state: Vec<u8>,
    pub(crate) config: Config,
    pub(crate) resume: Resume,
    pub(crate) timers: ProcessTimers,
}

/// Connects back to the parent and reads the start; the exit code when that fails (the
/// parent was told why when it could be).
pub(crate) fn start(variable: OsString) -> Result<(Connection, FrameReader, Started), i32> {
    // Where the OS offers it (Windows), the child also ends itself when its parent ends;
    // everywhere the end of the connection tells it, so a failure here only loses the extra.
    if let Err(e) = crate::sys::watch_parent(EXIT_PARENT_GONE) {
        eprintln!("skprocess: child cannot watch its parent: {e}");
    }
    let (connection, mut reader, proof) = connect(variable).map_err(|e| {
        eprintln!("skprocess: child setup failed: {e}");
        EXIT_SETUP_FAILED
    })?;
    match read_start(&connection, &mut reader, &proof) {
        Ok(Some(started)) => Ok((connection, reader, started)),
        Ok(None) => Err(EXIT_PARENT_GONE),
        Err(e) => {
            let _ = connection.send(&ToParent::SetupFailed(e.to_string()));
            Err(EXIT_SETUP_FAILED)
        }
    }
}

/// Connects back and proves the token; returns the proof the parent must send back.
fn connect(variable: OsString) -> Result<(Connection, FrameReader, String), Error> {
    let variable = ChildVariable::parse(variable).ok_or_else(|| Error::Config {
        problem: "the bootstrap variable is malformed".into(),
    })?;
    let connection = rendezvous::connect(&variable.address, &variable.token, variable.max_frame)?;
    Ok((
        connection,
        FrameReader::new(variable.max_frame),
        variable.proof,
    ))
}

/// The start in `bytes`, once it carries the parent's `proof`: nothing in it — a role, a
/// state, a configuration, code offsets — is used before, so a server that only learned the
/// token from this child's hello cannot make it run anything.
fn proven_start<'a>(bytes: &'a [u8], proof: &str) -> Result<Start<'a>, Error> {
    let start: Start<'_> = frame::decode(bytes)?;
    // The same constant-time comparison as the parent's for the token.
    if !rendezvous::tokens_match(&start.proof, proof) {
        return Err(Error::Bootstrap {
            detail: "the server this child connected to did not prove it is its parent".into(),
        });
    }
    Ok(start)
}

/// Reads the start message and the timer samples that follow it; `None` if the parent left.
fn read_start(
    connection: &Connection,
    reader: &mut FrameReader,
    proof: &str,
) -> Result<Option<Started>, Error> {
    let Some(frame) = reader.read_frame(&mut connection.stream())? else {
        return Ok(None);
    };
    let start = proven_start(frame.bytes(), proof)?;
    let sample_frames = start.sample_frames;
    let mut started = Started {
        role: start.role,
        key: start.key.to_owned(),
        state: start.state.to_vec(),
        config: start.config,
        resume: start.resume,
        timers: ProcessTimers::default(),
    };
    runtime_context::set(ChildContext::new(start.role, &started.key, &started.resume));
    for _ in 0..sample_frames {
        let Some(frame) = reader.read_frame(&mut connection.stream())? else {
            return Ok(None);
        };
        if let ToChild::Samples(samples) = frame::decode(frame.bytes())? {
            started.timers.record_packed(samples);
        }
    }
    Ok(Some(started))
}

/// Exits the process because the parent is gone; called by the link's reader.
pub(crate) fn exit_parent_gone() -> ! {
    std::process::exit(EXIT_PARENT_GONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lifecycle::Resume;
    use crate::protocol::parent_proof;

    fn start_with(proof: String) -> Vec<u8> {
        frame::encode(&Start {
            proof,
            role: Role::PoolWorker,
            key: "",
            state: &[],
            config: Config::default(),
            resume: Resume::default(),
            sample_frames: 0,
        })
        .unwrap()
    }

    #[test]
    fn a_start_from_a_server_that_cannot_prove_the_token_is_refused() {
        let variable = ChildVariable::encode("f00d", 4096, std::path::Path::new("/s"));
        let variable = ChildVariable::parse(variable).unwrap();
        // A server that saw only the hello knows the token, not the proof.
        for forged in ["f00d".to_owned(), String::new(), "0".repeat(32)] {
            let bytes = start_with(forged);
            let refused = proven_start(&bytes, &variable.proof);
            assert!(matches!(refused, Err(Error::Bootstrap { .. })));
        }
        let bytes = start_with(parent_proof("f00d"));
        let proven = proven_start(&bytes, &variable.proof);
        assert_eq!(proven.unwrap().role, Role::PoolWorker);
    }
}
