//! Live SQLite connections across real child processes: reopened before the first hook, again
//! after a SIGKILL restart, and a failed reopen is a failure of that start that costs a life.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use skprocess::prelude::*;
use skprocess::reconnect::{Reconnect, ReconnectError, Secret, SqliteRecipe};

skprocess::test_support!();

#[path = "support/pid.rs"]
mod pid;

#[path = "support/bound.rs"]
mod bound;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(30);

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rows(path: &Path) -> Vec<(u64, u32)> {
    let db = Connection::open(path).unwrap();
    let mut query = db
        .prepare("SELECT run, pid FROM runs ORDER BY run")
        .unwrap();
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Inserts one row per run; the first life kills itself with SIGKILL in the second run.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Recorder {
    db: Live<Connection>,
}

#[skprocess(runs = 3, lives = 2)]
impl Recorder {
    fn prerun(&mut self) -> Result<(), String> {
        // Reopened before the first hook of every start.
        if !self.db.is_open() {
            return Err("the live connection was not reopened before prerun".into());
        }
        Ok(())
    }

    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Box<dyn std::error::Error>> {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            // SAFETY: the child signals itself.
            pid::kill(std::process::id());
        }
        self.db.get()?.execute(
            "INSERT INTO runs (run, pid) VALUES (?1, ?2)",
            (ctx.current_run(), std::process::id()),
        )?;
        Ok(())
    }

    fn onfinish(&mut self) {
        self.db.close();
    }
}

#[test]
fn a_live_sqlite_file_is_reopened_in_the_child_and_after_a_sigkill_restart() {
    let _bound = bound::within(TEST_BOUND);
    let dir = scratch("sqlite-restart");
    let path = dir.join("runs.db");
    let setup = Connection::open(&path).unwrap();
    setup
        .execute("CREATE TABLE runs (run INTEGER, pid INTEGER)", ())
        .unwrap();
    // Opened here, used there: only the recipe travels.
    let db = Live::<Connection>::open(SqliteRecipe::file(&path)).unwrap();
    let handle = Recorder { db }.start().unwrap();
    handle.result_timeout(BOUND).unwrap();
    let rows = rows(&path);
    let runs: Vec<u64> = rows.iter().map(|(run, _)| *run).collect();
    assert_eq!(runs, vec![0, 1, 2]);
    // Run 0 came from the first child, runs 1 and 2 from its replacement.
    assert_ne!(rows[0].1, rows[1].1);
    assert_eq!(rows[1].1, rows[2].1);
    assert_ne!(rows[0].1, std::process::id());
    // Windows refuses to remove a file still open (a sharing violation).
    drop(setup);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Never gets to run when its database cannot open.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Reader {
    db: Live<Connection>,
}

#[skprocess(lives = 2)]
impl Reader {
    fn run(&mut self) {
        std::process::abort();
    }
}

#[test]
fn a_failed_reopen_fails_the_start_with_a_clear_error_and_no_hook_runs() {
    let _bound = bound::within(TEST_BOUND);
    let dir = scratch("sqlite-missing");
    let missing = dir.join("missing.db");
    let handle = Reader {
        db: Live::deferred(SqliteRecipe::read_only(&missing)),
    }
    .start()
    .unwrap();
    let error = handle.result_timeout(BOUND).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, skprocess::Error::Reopen { run: 0, .. }),
        "{message}"
    );
    assert!(
        message.contains("cannot reopen live field `db`"),
        "{message}"
    );
    assert!(message.contains("missing.db"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_in_memory_database_is_refused_with_a_clear_error() {
    let _bound = bound::within(TEST_BOUND);
    let error = Live::<Connection>::open(SqliteRecipe::file(":memory:")).unwrap_err();
    assert!(matches!(error, ReconnectError::Unsupported(_)));
    assert!(
        error.to_string().contains("in-memory SQLite database"),
        "{error}"
    );
}

/// A resource that fails to open once (it leaves a marker), then opens.
#[derive(Debug)]
struct FlakyOnce;

impl Reconnect for FlakyOnce {
    type Recipe = PathBuf;
    const KIND: &'static str = "flaky";

    fn open(marker: &PathBuf, _: Option<&Secret>) -> Result<Self, ReconnectError> {
        if marker.exists() {
            return Ok(FlakyOnce);
        }
        std::fs::write(marker, b"failed once").unwrap();
        Err(ReconnectError::Unsupported("not this time".into()))
    }
}

#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct Patient {
    resource: Live<FlakyOnce>,
}

#[skprocess(lives = 3)]
impl Patient {
    fn run(&mut self) -> Result<(), ReconnectError> {
        self.resource.get().map(drop)
    }

    fn result(&mut self, ctx: &mut Ctx<Self>) -> u32 {
        ctx.lives_left()
    }
}

#[test]
fn a_failed_reopen_costs_a_life_and_the_start_is_tried_again() {
    let _bound = bound::within(TEST_BOUND);
    let dir = scratch("flaky");
    let handle = Patient {
        resource: Live::deferred(dir.join("marker")),
    }
    .start()
    .unwrap();
    assert_eq!(handle.result_timeout(BOUND).unwrap(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Opens only with the right secret.
#[derive(Debug)]
struct Vault;

impl Reconnect for Vault {
    type Recipe = String;
    const KIND: &'static str = "vault";

    fn open(name: &String, secret: Option<&Secret>) -> Result<Self, ReconnectError> {
        match secret.map(Secret::expose) {
            Some("open sesame") => Ok(Vault),
            _ => Err(ReconnectError::Unsupported(format!(
                "wrong secret for {name}"
            ))),
        }
    }
}

#[autoreconnect(vault(main = "SKP_TEST_MAIN_VAULT", "*" = "SKP_TEST_ANY_VAULT"))]
#[derive(Serialize, Deserialize)]
struct Keyholder {
    main: Live<Vault>,
    spare: Live<Vault>,
}

#[skprocess]
impl Keyholder {
    fn run(&mut self) -> Result<(), ReconnectError> {
        self.main.get()?;
        self.spare.get().map(drop)
    }
}

#[test]
fn secrets_come_from_the_childs_environment_by_field_then_star() {
    let _bound = bound::within(TEST_BOUND);
    assert!(std::env::var("SKP_TEST_MAIN_VAULT").is_err());
    let state = Keyholder {
        main: Live::deferred("main".into()),
        spare: Live::deferred("spare".into()),
    };
    let bytes = skprocess::__private::wire::encode(&state).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("sesame"));
    let config = Keyholder::default_config()
        .secret_env("SKP_TEST_MAIN_VAULT", Secret::new("open sesame"))
        .secret_env("SKP_TEST_ANY_VAULT", Secret::new("open sesame"));
    state
        .start_with(config)
        .unwrap()
        .result_timeout(BOUND)
        .unwrap();
    // Without the `"*"` variable the spare cannot open: a clear error naming the variable.
    let config =
        Keyholder::default_config().secret_env("SKP_TEST_MAIN_VAULT", Secret::new("open sesame"));
    let state = Keyholder {
        main: Live::deferred("main".into()),
        spare: Live::deferred("spare".into()),
    };
    let error = state
        .start_with(config)
        .unwrap()
        .result_timeout(BOUND)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("cannot reopen live field `spare`"),
        "{message}"
    );
    assert!(message.contains("SKP_TEST_ANY_VAULT"), "{message}");
    assert!(std::env::var("SKP_TEST_MAIN_VAULT").is_err());
}
