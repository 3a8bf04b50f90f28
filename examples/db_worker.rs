//! The seeds' database worker: a process that owns a live database connection, takes queries
//! with `tell`, answers with `listen`, has 3 lives and 30 s per query, and closes the
//! connection in `onfinish`. The parent prints the mean query time from the worker's timers.
//!
//! On a SQLite file by default; on PostgreSQL when `DATABASE_URL` is set (the password, if
//! the URL has one, goes to the child as the environment variable `DB_PASSWORD` at spawn — it
//! is never serialized with the worker).
//!
//! Run it with `cargo run --example db_worker`.

use std::str::FromStr;
use std::time::Duration;

use skprocess::prelude::*;
use skprocess::reconnect::{PostgresRecipe, Reconnect, ReconnectError, Secret, SqliteRecipe};

/// A query: SQL with one integer parameter.
#[derive(Debug, Serialize, Deserialize)]
struct Query {
    sql: String,
    id: i64,
}

/// What the worker answers for each iteration.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Ok(Vec<String>),
    Error(String),
}

/// A database connection of either kind: a custom live resource over the two built-in ones.
enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum DatabaseRecipe {
    Sqlite(SqliteRecipe),
    Postgres(PostgresRecipe),
}

impl Reconnect for Database {
    type Recipe = DatabaseRecipe;
    const KIND: &'static str = "database";

    fn open(recipe: &DatabaseRecipe, secret: Option<&Secret>) -> Result<Self, ReconnectError> {
        Ok(match recipe {
            DatabaseRecipe::Sqlite(recipe) => {
                Database::Sqlite(<rusqlite::Connection as Reconnect>::open(recipe, None)?)
            }
            DatabaseRecipe::Postgres(recipe) => {
                let secret = secret.filter(|password| !password.expose().is_empty());
                Database::Postgres(Box::new(<postgres::Client as Reconnect>::open(
                    recipe, secret,
                )?))
            }
        })
    }
}

impl Database {
    fn names_for(&mut self, id: i64) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let sql = "SELECT name FROM users WHERE id = ";
        Ok(match self {
            Database::Sqlite(db) => db
                .prepare(&format!("{sql}?1"))?
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?,
            Database::Postgres(db) => db
                .query(&format!("{sql}$1"), &[&id])?
                .iter()
                .map(|row| row.get(0))
                .collect(),
        })
    }
}

#[autoreconnect(database("*" = "DB_PASSWORD"))]
#[derive(Serialize, Deserialize)]
struct DatabaseWorker {
    db: Live<Database>,
    #[serde(skip)]
    query: Option<Query>,
    #[serde(skip)]
    answer: Option<Answer>,
}

#[skprocess(runs = None, lives = 3, timeout(run = "30s"), inbox = Query, outbox = Answer)]
impl DatabaseWorker {
    fn prerun(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        // Wait briefly for a query from the parent.
        self.query = ctx.listen_timeout(Duration::from_millis(100))?;
        Ok(())
    }

    fn run(&mut self) -> Result<(), ReconnectError> {
        let Some(query) = &self.query else {
            self.answer = None;
            return Ok(());
        };
        let db = self.db.get_mut()?;
        self.answer = Some(match db.names_for(query.id) {
            Ok(names) if names.is_empty() => Answer::Error(format!("no user {}", query.id)),
            Ok(names) => Answer::Ok(names),
            Err(e) => Answer::Error(format!("{}: {e}", query.sql)),
        });
        Ok(())
    }

    fn postrun(&mut self, ctx: &mut Ctx<Self>) -> Result<(), Error> {
        // An iteration without a query answers nothing (the seed tells "no query" every
        // 100 ms, which a parent waiting for answers would have to skip).
        if let Some(answer) = self.answer.take() {
            ctx.tell(answer)?;
        }
        Ok(())
    }

    fn onfinish(&mut self) {
        self.db.close();
    }
}

/// The database to use, with its password (when PostgreSQL has one), after creating the
/// example's table.
fn prepare_database() -> Result<(DatabaseRecipe, Option<Secret>), Box<dyn std::error::Error>> {
    let setup = "CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, name TEXT);
                 DELETE FROM users;
                 INSERT INTO users (id, name) VALUES (123, 'ada'), (456, 'grace'), (789, 'edsger');";
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let config = postgres::Config::from_str(&url)?;
        postgres::Client::connect(&url, postgres::NoTls)?.batch_execute(setup)?;
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "localhost".to_owned(),
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
        println!("using PostgreSQL at {host}");
        return Ok((
            DatabaseRecipe::Postgres(PostgresRecipe::new(params)?),
            password,
        ));
    }
    let path = std::env::temp_dir().join(format!("skprocess-db-worker-{}.db", std::process::id()));
    rusqlite::Connection::open(&path)?.execute_batch(setup)?;
    println!("using the SQLite file {}", path.display());
    Ok((DatabaseRecipe::Sqlite(SqliteRecipe::file(path)), None))
}

#[skprocess::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (recipe, password) = prepare_database()?;
    // The secret goes to the worker's environment at spawn (empty for SQLite, which has
    // none); only the variable's name is in the binary.
    let secret = password.unwrap_or_else(|| Secret::new(""));
    let config = DatabaseWorker::default_config().secret_env("DB_PASSWORD", secret);
    let worker = DatabaseWorker {
        // Opened in the worker only, before its first hook (and again after any restart).
        db: Live::deferred(recipe.clone()),
        query: None,
        answer: None,
    }
    .start_with(config)?;

    let mut results = Vec::new();
    for id in [123, 456, 789, 1000] {
        worker.tell(Query {
            sql: "SELECT name FROM users WHERE id = ?".into(),
            id,
        })?;
        let answer = worker.listen_timeout(Duration::from_secs(30))?;
        println!("user {id}: {answer:?}");
        results.push(answer);
    }
    worker.stop()?;
    assert!(worker.wait_timeout(Duration::from_secs(30)));
    let timers = worker.timers().ok_or("the worker has not finished")?;
    worker.result()?;
    let run = timers.hook(skprocess::Hook::Run);
    let mean = run.mean().unwrap_or_default();
    println!(
        "{} iterations; mean query time (the `run` hook) {mean:?}",
        run.count()
    );
    assert!(matches!(results[0], Some(Answer::Ok(ref names)) if names == &["ada"]));
    assert!(matches!(results[3], Some(Answer::Error(_))));
    if let DatabaseRecipe::Sqlite(recipe) = recipe {
        let _ = std::fs::remove_file(recipe.path);
    }
    Ok(())
}
