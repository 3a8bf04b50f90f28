//! The entry of every re-executed binary, and the one place that maps a role to the code that
//! runs it.
//!
//! It sits above `child/` and the features: `child/bootstrap.rs` connects and reads the start
//! message, then the closed `match` in [`run_role`] hands the connection to the lifecycle
//! engine (`child/`), the pool's worker loop (`pool/worker.rs`) or a resident worker
//! (`worker/resident.rs`). A new role is a new [`Role`] variant, and this `match` is where
//! the compiler asks for its engine.
//!
//! A binary enters here from [`init`] at the top of `main`. A test binary cannot run code
//! before libtest's `main`, so `skprocess::test_support!()` adds one hidden `#[test]` and the
//! parent re-executes the test binary into exactly that test; it then runs the child on a
//! thread named `main`, with the Rust runtime fully up, as a `#[skprocess::main]` child would.

use std::ffi::OsString;

use crate::child::bootstrap::{self, Started};
use crate::child::engine;
use crate::protocol::Role;
use crate::protocol::bootstrap::EXIT_SETUP_FAILED;
use crate::transport::Connection;
use crate::transport::frame::FrameReader;

/// The entry hook: in a child, runs the process it was started for and exits; in any other
/// process, returns at once.
///
/// Call it first thing in `main` (which `#[skprocess::main]` does for you). Test binaries use
/// `skprocess::test_support!()` instead.
pub fn init() {
    if let Some(variable) = bootstrap::take_child_variable() {
        std::process::exit(child_main(variable));
    }
    serve_if_asked();
}

/// In a process started to serve a cluster (`SKPROCESS_SERVE`), serves it and never returns.
fn serve_if_asked() {
    #[cfg(feature = "cluster")]
    if let Some(code) = crate::cluster::serve::serve_from_env() {
        std::process::exit(code);
    }
    #[cfg(not(feature = "cluster"))]
    if std::env::var_os("SKPROCESS_SERVE").is_some() {
        eprintln!(
            "skprocess: SKPROCESS_SERVE is set, but this binary was built without the `cluster` feature"
        );
        std::process::exit(2);
    }
}

/// The hidden test of `test_support!()`: in a child, runs it on a thread named `main` and
/// exits; in the test run itself, does nothing.
#[doc(hidden)]
pub fn run_test_child() {
    let Some(variable) = bootstrap::take_child_variable() else {
        serve_if_asked();
        return;
    };
    let child = std::thread::Builder::new()
        .name("main".into())
        .spawn(move || child_main(variable));
    let code = match child.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        _ => EXIT_SETUP_FAILED,
    };
    std::process::exit(code);
}

/// Connects, reads the start, and runs the role it names; the process's exit code.
fn child_main(variable: OsString) -> i32 {
    // Before any user code: a panic anywhere in the child keeps its location and backtrace.
    crate::panics::install_hook();
    match bootstrap::start(variable) {
        Ok((connection, reader, started)) => {
            // A pool worker runs items of many types; its records name the role.
            let process = if started.key.is_empty() {
                "pool worker"
            } else {
                &started.key
            };
            crate::logs::child::install(process);
            run_role(connection, reader, started)
        }
        Err(code) => code,
    }
}

/// The one dispatch from a role to its engine.
fn run_role(connection: Connection, reader: FrameReader, started: Started) -> i32 {
    match started.role {
        Role::Lifecycle => {
            let entry = crate::registry::find(&started.key).filter(|e| e.role() == started.role);
            let run_child = entry.map(|entry| entry.run_child);
            engine::run_lifecycle(connection, reader, started, run_child)
        }
        Role::PoolWorker => crate::pool::worker::run(connection, reader, started),
        Role::ResidentWorker => crate::worker::resident::run(connection, reader, started),
    }
}
