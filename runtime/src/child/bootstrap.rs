//! How a re-executed binary becomes a child: find the bootstrap variable, remove it from the
//! environment before any user code runs, connect back, prove the token, read the start
//! message — used only once it proved in turn that it comes from the parent — and hand over to
//! the engine of the requested role.
//!
//! A binary enters here from [`init`] at the top of `main`. A test binary cannot run code
//! before libtest's `main`, so `skprocess::test_support!()` adds one hidden `#[test]` and the
//! parent re-executes the test binary into exactly that test; it then runs the child on a
//! thread named `main`, with the Rust runtime fully up, as a `#[skprocess::main]` child would.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::child::engine;
use crate::child::link::ChildLink;
use crate::child::runtime_context::{self, ChildContext};
use crate::config::Config;
use crate::error::Error;
use crate::protocol::lifecycle::{Resume, ToChild, ToParent};
use crate::protocol::{self, Role, Start};
use crate::registry;
use crate::timing::ProcessTimers;
use crate::transport::frame::{self, FrameReader};
use crate::transport::{Connection, rendezvous};

/// The bootstrap variable: `<frame limit>:<token>:<parent's proof>:<rendezvous address>`. Its
/// presence marks a child; it is removed before user code runs.
pub(crate) const ENV_CHILD: &str = "SKPROCESS_CHILD";

/// The name of the hidden test that `test_support!()` adds to a test binary.
pub const TEST_ENTRY_FN: &str = "__skprocess_child_entry";

/// Exit code of a child whose parent vanished.
const EXIT_PARENT_GONE: i32 = 70;
/// Exit code of a child that could not set up (bad environment, protocol error).
const EXIT_SETUP_FAILED: i32 = 71;
/// Exit code of a child that reached user code without the entry hook.
pub(crate) const EXIT_NO_ENTRY_HOOK: i32 = 97;

/// Set once this process took the child path.
static ENTERED_AS_CHILD: AtomicBool = AtomicBool::new(false);

/// Module paths of the `test_support!()` entries of this binary, filled at link time.
#[linkme::distributed_slice]
pub static TEST_ENTRIES: [&'static str];

/// The value of [`ENV_CHILD`] for a child.
pub(crate) fn child_variable(token: &str, max_frame: u32, address: &Path) -> OsString {
    let proof = protocol::parent_proof(token);
    let mut value = OsString::from(format!("{max_frame}:{token}:{proof}:"));
    value.push(address);
    value
}

/// The entry hook: in a child, runs the process it was started for and exits; in any other
/// process, returns at once.
///
/// Call it first thing in `main` (which `#[skprocess::main]` does for you). Test binaries use
/// `skprocess::test_support!()` instead.
pub fn init() {
    if let Some(variable) = take_child_variable() {
        std::process::exit(child_main(variable));
    }
}

/// The hidden test of `test_support!()`: in a child, runs it on a thread named `main` and
/// exits; in the test run itself, does nothing.
#[doc(hidden)]
pub fn run_test_child() {
    let Some(variable) = take_child_variable() else {
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

/// Reads and removes the bootstrap variable, so that user code — and any process it starts —
/// never sees it.
fn take_child_variable() -> Option<OsString> {
    let variable = std::env::var_os(ENV_CHILD)?;
    ENTERED_AS_CHILD.store(true, Ordering::SeqCst);
    // SAFETY: this runs before any user code of the child: first thing in `main`, or in the
    // hidden test while libtest's own threads only wait for it; nothing reads the environment
    // concurrently.
    unsafe { std::env::remove_var(ENV_CHILD) };
    Some(variable)
}

/// The exact test name the parent re-executes a test binary into, when this is one.
pub(crate) fn test_entry_name() -> Option<String> {
    let module = TEST_ENTRIES.first()?;
    // libtest names tests by their path inside the crate, without the crate's name.
    Some(match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{TEST_ENTRY_FN}"),
        None => TEST_ENTRY_FN.to_owned(),
    })
}

/// Stops a child that reached user code without the entry hook before it can spawn again.
pub(crate) fn forbid_unhooked_child() {
    if std::env::var_os(ENV_CHILD).is_some() && !ENTERED_AS_CHILD.load(Ordering::SeqCst) {
        eprintln!(
            "skprocess: this child process reached user code without the entry hook and will not \
             spawn again; start `main` with `skprocess::init()` or mark it `#[skprocess::main]` \
             (in test binaries, add `skprocess::test_support!();`)"
        );
        std::process::exit(EXIT_NO_ENTRY_HOOK);
    }
}

/// What a child needs to run, read from the start message and the frames after it.
pub(crate) struct Started {
    pub(crate) key: String,
    pub(crate) state: Vec<u8>,
    pub(crate) config: Config,
    pub(crate) resume: Resume,
    pub(crate) timers: ProcessTimers,
}

fn child_main(variable: OsString) -> i32 {
    let (connection, mut reader, proof) = match connect(variable) {
        Ok(connected) => connected,
        Err(e) => {
            eprintln!("skprocess: child setup failed: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    let started = match read_start(&connection, &mut reader, &proof) {
        Ok(Some(started)) => started,
        Ok(None) => return EXIT_PARENT_GONE,
        Err(e) => {
            let _ = connection.send(&ToParent::SetupFailed(e.to_string()));
            return EXIT_SETUP_FAILED;
        }
    };
    run_registered(connection, reader, started)
}

/// What the bootstrap variable says: the frame limit, the token to prove, the proof the
/// parent must send back, and where to connect.
struct Bootstrap {
    max_frame: u32,
    token: String,
    proof: String,
    address: PathBuf,
}

fn parse_variable(variable: OsString) -> Result<Bootstrap, Error> {
    let variable = variable
        .into_string()
        .map_err(|_| Error::Config("the bootstrap variable is not UTF-8".into()))?;
    let malformed = || Error::Config("the bootstrap variable is malformed".into());
    let mut parts = variable.splitn(4, ':');
    let max_frame: u32 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(malformed)?;
    let token = parts.next().ok_or_else(malformed)?.to_owned();
    let proof = parts.next().ok_or_else(malformed)?.to_owned();
    let address = PathBuf::from(parts.next().ok_or_else(malformed)?);
    Ok(Bootstrap {
        max_frame,
        token,
        proof,
        address,
    })
}

/// Connects back and proves the token; returns the proof the parent must send back.
fn connect(variable: OsString) -> Result<(Connection, FrameReader, String), Error> {
    let bootstrap = parse_variable(variable)?;
    let connection =
        rendezvous::connect(&bootstrap.address, &bootstrap.token, bootstrap.max_frame)?;
    Ok((
        connection,
        FrameReader::new(bootstrap.max_frame),
        bootstrap.proof,
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
        key: start.key.to_owned(),
        state: start.state.to_vec(),
        config: start.config,
        resume: start.resume,
        timers: ProcessTimers::default(),
    };
    runtime_context::set(ChildContext::new(start.role, &started.key, &started.resume));
    // A pool worker runs items of many types; its records name the role.
    let process = if started.key.is_empty() {
        "pool worker"
    } else {
        &started.key
    };
    crate::logs::child::install(process);
    for _ in 0..sample_frames {
        let Some(frame) = reader.read_frame(&mut connection.stream())? else {
            return Ok(None);
        };
        if let ToChild::Samples(samples) = frame::decode(frame.bytes())? {
            for (slot, sample) in samples {
                started.timers.record(slot, sample);
            }
        }
    }
    Ok(Some(started))
}

fn run_registered(connection: Connection, reader: FrameReader, started: Started) -> i32 {
    let role = ChildContext::current().map(ChildContext::role);
    if role == Some(Role::PoolWorker) {
        return crate::pool::worker::run(connection, reader, started);
    }
    if role == Some(Role::ResidentWorker) {
        return crate::worker::resident::run(connection, reader, started);
    }
    let entry = registry::find(&started.key).filter(|entry| Some(entry.role()) == role);
    let Some(entry) = entry else {
        let _ = connection.send(&ToParent::UnknownType(started.key));
        return EXIT_SETUP_FAILED;
    };
    let link = match ChildLink::start(connection, reader, &started) {
        Ok(link) => link,
        Err(e) => {
            eprintln!("skprocess: child setup failed: {e}");
            return EXIT_SETUP_FAILED;
        }
    };
    match (entry.run_child)(link, started) {
        engine::Ended::Reported => 0,
        engine::Ended::ParentGone => EXIT_PARENT_GONE,
        engine::Ended::SetupFailed => EXIT_SETUP_FAILED,
    }
}

/// Exits the process because the parent is gone; called by the link's reader.
pub(crate) fn exit_parent_gone() -> ! {
    std::process::exit(EXIT_PARENT_GONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lifecycle::Resume;

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
    fn the_variable_carries_the_token_and_the_parents_proof() {
        let variable = child_variable("f00d", 4096, Path::new("/tmp/a:b/sock"));
        let bootstrap = parse_variable(variable).unwrap();
        assert_eq!(bootstrap.max_frame, 4096);
        assert_eq!(bootstrap.token, "f00d");
        assert_eq!(bootstrap.proof, protocol::parent_proof("f00d"));
        assert_eq!(bootstrap.address, Path::new("/tmp/a:b/sock"));
    }

    #[test]
    fn a_start_from_a_server_that_cannot_prove_the_token_is_refused() {
        let bootstrap = parse_variable(child_variable("f00d", 4096, Path::new("/s"))).unwrap();
        // A server that saw only the hello knows the token, not the proof.
        for forged in ["f00d".to_owned(), String::new(), "0".repeat(32)] {
            let bytes = start_with(forged);
            let refused = proven_start(&bytes, &bootstrap.proof);
            assert!(matches!(refused, Err(Error::Bootstrap { .. })));
        }
        let bytes = start_with(protocol::parent_proof("f00d"));
        let proven = proven_start(&bytes, &bootstrap.proof);
        assert_eq!(proven.unwrap().role, Role::PoolWorker);
    }
}
