//! Live resources: connections and files that follow a process into its child by reopening
//! there, instead of being copied.
//!
//! How the parts fit:
//! - [`Reconnect`] says how to open a resource type from a serializable **recipe** (a path, an
//!   address, a connection string without its password) plus an optional [`Secret`].
//! - [`Live<T>`] holds a recipe and, where it is open, the resource. Serializing it writes the
//!   recipe only — never a secret, never a raw handle. Deserializing gives an unopened `Live`.
//! - `#[autoreconnect]` on a process struct implements [`AutoReconnect`], which reopens every
//!   `Live` field with the secret its attribute names. The lifecycle engine calls it in the
//!   child **before the first hook**, on every start — the first and each restart after a
//!   crash. A failure to reopen is a failure of that start ([`Error::Reopen`]): it costs a life
//!   and is retried while lives remain, and is final otherwise. Nothing is swallowed.
//!
//! # Secrets (the typed shape, AR-Q01)
//! A secret is one string (a password), typed [`Secret`]: it has no `Serialize`, and its
//! `Debug` is redacted. It reaches the child as an **environment variable of the child
//! process**, set when the child is spawned — never over the socket, never compiled in:
//! - the attribute names *which variable* holds a field's secret, by resource kind, then field
//!   name, then `"*"`: `#[autoreconnect(postgres(db = "ORDERS_PASSWORD", "*" = "PGPASSWORD"))]`;
//! - the variable comes from the parent's environment (children inherit it), or is given at
//!   start with [`Config::secret_env`](crate::Config::secret_env), which sets it on the child
//!   only.
//!
//! [`Error::Reopen`]: crate::Error::Reopen

mod file;
mod net;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use file::FileRecipe;
#[cfg(feature = "postgres")]
pub use postgres::PostgresRecipe;
#[cfg(feature = "redis")]
pub use redis::RedisRecipe;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteRecipe;

/// A resource that can be opened again in another process from a recipe.
///
/// Implemented for [`std::net::TcpStream`], `UnixStream` (on Unix),
/// [`std::fs::File`], `rusqlite::Connection` (feature `sqlite`, on by default),
/// `postgres::Client` (feature `postgres`) and `redis::Connection` (feature `redis`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a live resource: it cannot be reopened in another process",
    label = "`Live<{Self}>` needs `{Self}: Reconnect`",
    note = "implement `skprocess::reconnect::Reconnect` for it: a serializable recipe and how to open from it"
)]
pub trait Reconnect: Sized {
    /// What is serialized in place of the resource: everything needed to open it, except a
    /// secret.
    type Recipe: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + 'static;

    /// The resource kind, as `#[autoreconnect]` names it to look up secrets (`"postgres"`,
    /// `"redis"`, `"sqlite"`, `"tcp"`, `"unix"`, `"file"`).
    const KIND: &'static str;

    /// Opens the resource. `secret` is the secret `#[autoreconnect]` resolved for the field,
    /// if any.
    fn open(recipe: &Self::Recipe, secret: Option<&Secret>) -> Result<Self, ReconnectError>;

    /// The recipe to serialize now, for resources whose state moves on (a file's offset).
    fn current_recipe(&self, opened_with: &Self::Recipe) -> Self::Recipe {
        opened_with.clone()
    }
}

/// A secret, such as a password: never serialized, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads the secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, ReconnectError> {
        std::env::var(name)
            .map(Self)
            .map_err(|_| ReconnectError::MissingSecret {
                variable: name.to_owned(),
            })
    }

    /// The secret's value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a live resource could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconnectError {
    /// The resource is not open here: it was closed, or never reopened in this process (is
    /// the struct marked `#[autoreconnect]`?).
    #[error(
        "the live `{kind}` resource is not open in this process (closed, or the struct lacks `#[autoreconnect]`)"
    )]
    NotOpen {
        /// [`Reconnect::KIND`] of the resource.
        kind: &'static str,
    },
    /// Opening failed.
    #[error("cannot open {kind} `{target}`: {message}")]
    Open {
        /// [`Reconnect::KIND`] of the resource.
        kind: &'static str,
        /// What was being opened (a path, an address, a host), never a secret.
        target: String,
        /// Why, as the resource's library put it.
        message: String,
    },
    /// The environment variable that should hold the secret is not set in this process.
    #[error(
        "the secret comes from environment variable `{variable}`, which is not set in this process"
    )]
    MissingSecret {
        /// The variable's name.
        variable: String,
    },
    /// The recipe is not one that can be reopened elsewhere, or it would carry a secret.
    #[error("{0}")]
    Unsupported(String),
}

/// A live field that could not be reopened: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot reopen live field `{field}`: {source}")]
pub struct ReopenError {
    /// The field's name.
    pub field: &'static str,
    /// What went wrong.
    #[source]
    pub source: ReconnectError,
}

/// A resource that reopens in the process it moves to. See the [module docs](self).
///
/// Serializing writes only the recipe; a deserialized `Live` is unopened until
/// [`reopen`](Live::reopen) (which `#[autoreconnect]` calls before the first hook).
pub struct Live<T: Reconnect> {
    recipe: T::Recipe,
    resource: Option<T>,
}

impl<T: Reconnect> Live<T> {
    /// Opens the resource here, without a secret.
    pub fn open(recipe: T::Recipe) -> Result<Self, ReconnectError> {
        Self::open_with(recipe, None)
    }

    /// Opens the resource here, with a secret.
    pub fn open_with(recipe: T::Recipe, secret: Option<&Secret>) -> Result<Self, ReconnectError> {
        let resource = T::open(&recipe, secret)?;
        Ok(Self {
            recipe,
            resource: Some(resource),
        })
    }

    /// A resource that is not opened here, only in the process it moves to.
    pub fn deferred(recipe: T::Recipe) -> Self {
        Self {
            recipe,
            resource: None,
        }
    }

    /// Opens the resource again (closing it first if it is open).
    pub fn reopen(&mut self, secret: Option<&Secret>) -> Result<(), ReconnectError> {
        if let Some(open) = self.resource.take() {
            self.recipe = open.current_recipe(&self.recipe);
        }
        self.resource = Some(T::open(&self.recipe, secret)?);
        Ok(())
    }

    /// The open resource.
    pub fn get(&self) -> Result<&T, ReconnectError> {
        self.resource
            .as_ref()
            .ok_or(ReconnectError::NotOpen { kind: T::KIND })
    }

    /// The open resource, mutably.
    pub fn get_mut(&mut self) -> Result<&mut T, ReconnectError> {
        self.resource
            .as_mut()
            .ok_or(ReconnectError::NotOpen { kind: T::KIND })
    }

    /// Whether the resource is open in this process.
    pub fn is_open(&self) -> bool {
        self.resource.is_some()
    }

    /// Closes the resource (drops it); the recipe stays, so it can be reopened.
    pub fn close(&mut self) {
        if let Some(open) = self.resource.take() {
            self.recipe = open.current_recipe(&self.recipe);
        }
    }

    /// The recipe as it would be serialized now.
    pub fn recipe(&self) -> T::Recipe {
        match &self.resource {
            Some(open) => open.current_recipe(&self.recipe),
            None => self.recipe.clone(),
        }
    }
}

impl<T: Reconnect> Serialize for Live<T> {
    /// Writes the recipe only: never a secret, never a handle.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.recipe().serialize(serializer)
    }
}

impl<'de, T: Reconnect> Deserialize<'de> for Live<T> {
    /// Reads a recipe; the resource stays closed until [`Live::reopen`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::Recipe::deserialize(deserializer).map(Self::deferred)
    }
}

impl<T: Reconnect> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("kind", &T::KIND)
            .field("recipe", &self.recipe)
            .field("open", &self.is_open())
            .finish()
    }
}

/// A type whose [`Live`] fields reopen together; `#[autoreconnect]` implements it.
///
/// The same without the macro: implement it by calling [`reopen_field`] for each field, then
/// implement [`Process::reopen_live`](crate::Process::reopen_live) to call it (the
/// `#[skprocess]` macro does that for you when this trait is implemented).
pub trait AutoReconnect {
    /// Reopens every live field; the first failure is returned.
    fn reopen_live(&mut self) -> Result<(), ReopenError>;
}

/// Reopens one live field with the secret in environment variable `secret_variable`, if
/// one is named; `#[autoreconnect]` calls this for each `Live` field.
pub fn reopen_field<T: Reconnect>(
    live: &mut Live<T>,
    field: &'static str,
    secret_variable: Option<&str>,
) -> Result<(), ReopenError> {
    let reopened = match secret_variable {
        Some(variable) => Secret::from_env(variable).and_then(|secret| live.reopen(Some(&secret))),
        None => live.reopen(None),
    };
    reopened.map_err(|source| ReopenError { field, source })
}

/// Lets generated code reopen a process's live fields when it implements [`AutoReconnect`],
/// and do nothing otherwise (method resolution picks the first impl that applies). Not public
/// API.
#[doc(hidden)]
pub struct ReopenProbe<'a, T>(pub RefCell<&'a mut T>);

/// Picked when the type implements [`AutoReconnect`]. Not public API.
#[doc(hidden)]
pub trait ReopenWithAutoReconnect {
    /// Reopens the live fields.
    fn reopen_fields(&self) -> Result<(), ReopenError>;
}

impl<T: AutoReconnect> ReopenWithAutoReconnect for &ReopenProbe<'_, T> {
    fn reopen_fields(&self) -> Result<(), ReopenError> {
        self.0.borrow_mut().reopen_live()
    }
}

/// Picked otherwise. Not public API.
#[doc(hidden)]
pub trait ReopenNothing {
    /// Does nothing.
    fn reopen_fields(&self) -> Result<(), ReopenError>;
}

impl<T> ReopenNothing for ReopenProbe<'_, T> {
    fn reopen_fields(&self) -> Result<(), ReopenError> {
        Ok(())
    }
}

/// The environment variable that holds the secret of field `field` of kind `kind`: the
/// field's own entry, else the kind's `"*"`, else none. `table` rows are `(kind, key,
/// variable)` as `#[autoreconnect]` lists them. Not public API.
#[doc(hidden)]
pub fn secret_variable(
    kind: &str,
    field: &str,
    table: &[(&'static str, &'static str, &'static str)],
) -> Option<&'static str> {
    let lookup = |key: &str| {
        table
            .iter()
            .find(|(k, name, _)| *k == kind && *name == key)
            .map(|(_, _, variable)| *variable)
    };
    lookup(field).or_else(|| lookup("*"))
}

/// Whether `kind` is among `kinds`, in a constant context. Not public API.
#[doc(hidden)]
pub const fn kind_is_one_of(kind: &str, kinds: &[&str]) -> bool {
    let mut i = 0;
    while i < kinds.len() {
        if const_str_eq(kind, kinds[i]) {
            return true;
        }
        i += 1;
    }
    false
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// An [`ReconnectError::Open`] for `kind` and `target`.
pub(crate) fn open_error(
    kind: &'static str,
    target: impl fmt::Display,
    error: impl fmt::Display,
) -> ReconnectError {
    ReconnectError::Open {
        kind,
        target: target.to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[(&str, &str, &str)] = &[
        ("postgres", "orders", "ORDERS_PASSWORD"),
        ("postgres", "*", "PGPASSWORD"),
        ("redis", "cache", "REDIS_PASSWORD"),
    ];

    #[test]
    fn secrets_resolve_by_kind_then_field_then_star() {
        assert_eq!(
            secret_variable("postgres", "orders", TABLE),
            Some("ORDERS_PASSWORD")
        );
        assert_eq!(
            secret_variable("postgres", "audit", TABLE),
            Some("PGPASSWORD")
        );
        assert_eq!(
            secret_variable("redis", "cache", TABLE),
            Some("REDIS_PASSWORD")
        );
        assert_eq!(secret_variable("redis", "other", TABLE), None);
        assert_eq!(secret_variable("sqlite", "orders", TABLE), None);
    }

    #[test]
    fn kinds_compare_in_constant_context() {
        const { assert!(kind_is_one_of("redis", &["postgres", "redis"])) };
        const { assert!(!kind_is_one_of("redi", &["postgres", "redis"])) };
        let kinds = ["postgres", "redis"];
        assert!(!kind_is_one_of("sqlite", &kinds));
    }

    #[test]
    fn a_secret_is_redacted_and_a_live_serializes_its_recipe_only() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
        let dir = std::env::temp_dir().join(format!("skp-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.txt");
        std::fs::write(&path, b"hello world").unwrap();
        let mut live = Live::<std::fs::File>::open(FileRecipe::read(&path)).unwrap();
        let mut head = [0u8; 6];
        std::io::Read::read_exact(live.get_mut().unwrap(), &mut head).unwrap();
        let bytes = crate::wire::encode(&live).unwrap();
        let mut moved: Live<std::fs::File> = crate::wire::decode(&bytes).unwrap();
        assert!(!moved.is_open());
        assert!(matches!(
            moved.get(),
            Err(ReconnectError::NotOpen { kind: "file" })
        ));
        moved.reopen(None).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(moved.get_mut().unwrap(), &mut rest).unwrap();
        assert_eq!(rest, "world");
        // Windows removes no file that is still open.
        drop((live, moved));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
