//! The bootstrap contract between a parent and the binary it re-executes: the variable that
//! marks a child and what it holds, the exit codes a child ends with before it could report,
//! and how a test binary is re-executed into its hidden entry test.
//!
//! Both sides read it from here: the parent (`parent/spawn.rs`) writes the variable and reads
//! the exit codes; the child (`child/bootstrap.rs`, entered through `entry.rs`) parses the
//! variable and exits with the codes. Neither imports the other.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The bootstrap variable: `<frame limit>:<token>:<parent's proof>:<rendezvous address>`. Its
/// presence marks a child; it is removed before user code runs. The child proves the token in
/// its hello; the parent proves itself with the proof in every start (mutual proof).
pub(crate) const ENV_CHILD: &str = "SKPROCESS_CHILD";

/// Set in a child whose standard input is its parent's standard output: a child started from
/// a test binary, whose own standard output is the null device until libtest's header is out.
/// The child makes its input its output before any user code, and its input the null device.
pub(crate) const ENV_STDOUT_ON_STDIN: &str = "SKPROCESS_STDOUT_ON_STDIN";

/// The name of the hidden test that `test_support!()` adds to a test binary.
pub const TEST_ENTRY_FN: &str = "__skprocess_child_entry";

/// The arguments after the test's name that make libtest run exactly that one test, on the
/// thread it is given, with the child's output passed through.
pub(crate) const TEST_ENTRY_ARGS: [&str; 4] = ["--exact", "--test-threads=1", "--nocapture", "-q"];

/// Exit code of a child whose parent vanished.
pub(crate) const EXIT_PARENT_GONE: i32 = 70;
/// Exit code of a child that could not set up (bad environment, protocol error).
pub(crate) const EXIT_SETUP_FAILED: i32 = 71;
/// Exit code of a child that reached user code without the entry hook.
pub(crate) const EXIT_NO_ENTRY_HOOK: i32 = 97;

/// Set once this process took the child path.
static ENTERED_AS_CHILD: AtomicBool = AtomicBool::new(false);

/// Module paths of the `test_support!()` entries of this binary, filled at link time.
#[linkme::distributed_slice]
pub static TEST_ENTRIES: [&'static str];

/// What the bootstrap variable carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildVariable {
    pub(crate) max_frame: u32,
    pub(crate) token: String,
    /// What the parent must send back in its start ([`parent_proof`](super::parent_proof)).
    pub(crate) proof: String,
    pub(crate) address: PathBuf,
}

impl ChildVariable {
    /// The value of [`ENV_CHILD`] for a child.
    pub(crate) fn encode(token: &str, max_frame: u32, address: &Path) -> OsString {
        let proof = super::parent_proof(token);
        let mut value = OsString::from(format!("{max_frame}:{token}:{proof}:"));
        value.push(address);
        value
    }

    /// Reads a value written by [`encode`](ChildVariable::encode); `None` when it is not one.
    pub(crate) fn parse(variable: OsString) -> Option<Self> {
        let variable = variable.into_string().ok()?;
        let mut parts = variable.splitn(4, ':');
        let max_frame = parts.next()?.parse().ok()?;
        let token = parts.next()?.to_owned();
        let proof = parts.next()?.to_owned();
        let address = PathBuf::from(parts.next()?);
        Some(Self {
            max_frame,
            token,
            proof,
            address,
        })
    }
}

/// Records that this process took the child path (the variable was read at the entry hook).
pub(crate) fn mark_entered() {
    ENTERED_AS_CHILD.store(true, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_reads_back_what_was_written_even_with_colons_in_the_address() {
        let address = Path::new("/tmp/a:b/sock");
        let value = ChildVariable::encode("0af3", 4096, address);
        let parsed = ChildVariable::parse(value).unwrap();
        assert_eq!(parsed.max_frame, 4096);
        assert_eq!(parsed.token, "0af3");
        assert_eq!(parsed.proof, super::super::parent_proof("0af3"));
        assert_eq!(parsed.address, address);
        assert_eq!(ChildVariable::parse("nonsense".into()), None);
    }
}
