//! Live PostgreSQL and Redis connections against real servers (`.ci/services` installs and
//! starts them and prints `DATABASE_URL` and `REDIS_URL`). Without the variable a test prints
//! a notice and passes locally, but fails under `CI=true`: CI never skips silently.

use std::str::FromStr;
use std::time::Duration;

use skprocess::prelude::*;
use skprocess::reconnect::{PostgresRecipe, RedisRecipe, Secret};

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/pid.rs"]
mod pid;

/// The longest any test here may take before the binary aborts, naming it: the net under
/// waits that have no per-call bound (share reads and writes, maps, tells).
const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// Every wait is bounded, so a regression fails in seconds instead of hanging.
const BOUND: Duration = Duration::from_secs(60);

/// The server's URL, or `None` (with a notice) when it is not set outside CI.
fn server_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{variable} is not set: under CI these tests run against a real server (`eval \"$(.ci/services)\"`)"
        ),
        Err(_) => {
            eprintln!(
                "skipping: {variable} is not set; run `eval \"$(.ci/services)\"` to test against a real server"
            );
            None
        }
    }
}

/// The connection string without its password, and the password.
fn split_postgres_url(url: &str) -> (PostgresRecipe, Option<Secret>) {
    let config = postgres::Config::from_str(url).unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        #[cfg(unix)]
        postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    let params = format!(
        "host={host} port={} user={} dbname={}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres"),
    );
    let password = config
        .get_password()
        .map(|p| Secret::new(String::from_utf8_lossy(p)));
    (PostgresRecipe::new(params).unwrap(), password)
}

/// Inserts one row per run. In its first life, the second run is a long query that the
/// parent kills.
#[autoreconnect(postgres("*" = "SKP_TEST_PGPASSWORD"))]
#[derive(Serialize, Deserialize)]
struct PgWorker {
    db: Live<postgres::Client>,
    table: String,
}

#[skprocess(runs = 3, lives = 2)]
impl PgWorker {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Box<dyn std::error::Error>> {
        let db = self.db.get_mut()?;
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            // The table's name in the text lets the parent find this query in pg_stat_activity.
            db.batch_execute(&format!(
                "SELECT pg_sleep(60), 'sleeping for {}'",
                self.table
            ))?;
        }
        let insert = format!("INSERT INTO {} (run, pid) VALUES ($1, $2)", self.table);
        db.execute(
            &insert,
            &[&(ctx.current_run() as i64), &(std::process::id() as i64)],
        )?;
        Ok(())
    }

    fn onfinish(&mut self) {
        self.db.close();
    }
}

#[test]
fn a_postgres_worker_killed_mid_query_is_replaced_and_its_replacement_reopens_and_finishes() {
    let _bound = bound::within(TEST_BOUND);
    let Some(url) = server_url("DATABASE_URL") else {
        return;
    };
    let (recipe, password) = split_postgres_url(&url);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let table = format!("skp_runs_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (run BIGINT, pid BIGINT)"
        ))
        .unwrap();
    let mut config = PgWorker::default_config();
    if let Some(password) = password {
        config = config.secret_env("SKP_TEST_PGPASSWORD", password);
    }
    let worker = PgWorker {
        db: Live::deferred(recipe),
        table: table.clone(),
    };
    let handle = worker.start_with(config).unwrap();
    // Wait until the first child is inside its long query, then kill it there.
    let sleeping = format!("%pg_sleep%sleeping for {table}%");
    bound::until(BOUND, "the worker starts its long query", || {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()",
                &[&sleeping],
            )
            .unwrap();
        row.get::<_, i64>(0) > 0
    });
    let first_pid = handle.pid();
    pid::kill(first_pid);
    handle.result_timeout(BOUND).unwrap();
    let rows: Vec<(i64, i64)> = admin
        .query(&format!("SELECT run, pid FROM {table} ORDER BY run"), &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(rows[0].1, i64::from(first_pid));
    assert_ne!(
        rows[1].1,
        i64::from(first_pid),
        "run 1 was completed by the replacement"
    );
    assert_eq!(rows[1].1, rows[2].1);
    // End the killed child's abandoned query, and clean up.
    let _ = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        &[&sleeping],
    );
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn a_postgres_recipe_with_a_password_is_refused() {
    let _bound = bound::within(TEST_BOUND);
    let error = PostgresRecipe::new("host=localhost user=me password=hunter2").unwrap_err();
    assert!(error.to_string().contains("carries a password"), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Increments a counter once per run; the first life kills itself in the second run.
#[autoreconnect]
#[derive(Serialize, Deserialize)]
struct RedisCounter {
    redis: Live<redis::Connection>,
    key: String,
}

#[skprocess(runs = 3, lives = 2)]
impl RedisCounter {
    fn run(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Box<dyn std::error::Error>> {
        if ctx.current_run() == 1 && ctx.lives_left() == 2 {
            pid::kill(std::process::id());
        }
        let _: i64 = redis::cmd("INCR")
            .arg(&self.key)
            .query(self.redis.get_mut()?)?;
        Ok(())
    }
}

#[test]
fn a_redis_connection_reopens_after_a_sigkill_restart() {
    let _bound = bound::within(TEST_BOUND);
    let Some(url) = server_url("REDIS_URL") else {
        return;
    };
    let key = format!("skp:counter:{}", std::process::id());
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&key).query(&mut admin).unwrap();
    let counter = RedisCounter {
        redis: Live::deferred(RedisRecipe::new(url).unwrap()),
        key: key.clone(),
    };
    counter.start().unwrap().result_timeout(BOUND).unwrap();
    let count: i64 = redis::cmd("GET").arg(&key).query(&mut admin).unwrap();
    assert_eq!(count, 3);
    let _: () = redis::cmd("DEL").arg(&key).query(&mut admin).unwrap();
}
