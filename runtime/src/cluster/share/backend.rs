//! The Redis side of the local share's seam ([`Backend`]): one connection per process and
//! share, each operation sent to a native command (`store.rs`) or run as an optimistic
//! transaction (`txn.rs`), and failures reported as the local share reports them.

use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::Connection;

use crate::cluster::Server;
use crate::cluster::keys::SHARE_TTL;
use crate::cluster::link::COMMAND_TIMEOUT;
use crate::cluster::share::failure::{Failure, ShareKeys};
use crate::cluster::share::remote::Remote;
use crate::cluster::share::store;
use crate::cluster::share::txn::{self, FieldCache, Patience};
use crate::error::Error;
use crate::protocol::share::{Target, WholeOp};
use crate::share::link::{Backend, Deadline};
use crate::share::peer::{describe, panicked_text};
use crate::share::{Layout, Shared, WHOLE_VALUE};
use crate::transport::frame;

/// A share of `T` on a Redis server, as seen from this process.
pub(crate) struct Redis<T> {
    server: Server,
    id: String,
    keys: ShareKeys,
    layouts: Vec<Layout>,
    connection: Mutex<Option<Connection>>,
    /// The fields' encodings as this process last saw them (see `txn.rs`).
    cache: FieldCache,
    /// A write that was lost (the server unreachable, or other writers past its patience),
    /// reported by the next call (like the local share's writes).
    unreported: Mutex<Option<String>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Shared> Redis<T> {
    pub(super) fn new(remote: &Remote) -> Result<Self, Error> {
        // Methods run in this process: a panic keeps its location (see `panics`).
        crate::panics::install_hook();
        let server = remote.server()?;
        let keys = remote.keys()?;
        let id = remote.id.clone();
        let fields = T::FIELDS
            .iter()
            .map(|field| keys.share_field(&id, field))
            .collect();
        let layouts = (0..T::FIELDS.len())
            .map(|index| {
                u16::try_from(index)
                    .ok()
                    .and_then(T::field_layout)
                    .unwrap_or(Layout::VALUE)
            })
            .collect();
        Ok(Self {
            keys: ShareKeys {
                share: keys.share(&id),
                fields,
                error: keys.share_error(&id),
            },
            id,
            server,
            layouts,
            connection: Mutex::new(None),
            cache: Mutex::new(Vec::new()),
            unreported: Mutex::new(None),
            _type: PhantomData,
        })
    }

    /// Every key of the share, for the keeper.
    pub(super) fn all_keys(&self) -> Vec<String> {
        let mut keys = vec![self.keys.share.clone(), self.keys.error.clone()];
        keys.extend(self.keys.fields.iter().cloned());
        keys
    }

    /// Writes the first value: the share's key and every field, in one transaction. Checks
    /// that `T`'s encoding is its fields' encodings in order (what reassembling it needs).
    pub(super) fn create(&self, value: &T) -> Result<(), Error> {
        let whole = frame::encode(value).map_err(Error::from)?;
        let mut copy: T = frame::decode_owned(&whole).map_err(Error::from)?;
        let fields =
            txn::field_encodings(&mut copy, T::FIELDS.len()).map_err(|e| Error::Shared {
                message: e.to_string(),
            })?;
        if fields.concat() != whole {
            return Err(Error::Config {
                problem: format!(
                    "`{}` cannot be shared on a cluster: its serde encoding is not its fields in order (a skipped or flattened field?)",
                    std::any::type_name::<T>()
                ),
            });
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&self.keys.share)
            .arg(std::any::type_name::<T>())
            .arg("PX")
            .arg(u64::try_from(SHARE_TTL.as_millis()).unwrap_or(u64::MAX))
            .ignore();
        for ((key, layout), encoding) in self.keys.fields.iter().zip(&self.layouts).zip(&fields) {
            let parts = (layout.split)(encoding).map_err(|e| Error::Shared {
                message: e.to_string(),
            })?;
            store::write_field(&mut pipe, layout.kind, key, parts);
        }
        self.with_connection(None, |c| Ok(pipe.query::<()>(c)?))
            .map_err(|failure| self.error(failure, None))
    }

    /// Applies one operation and returns its encoded result; `patience` says how long it
    /// runs again when other writers change what it reads, `deadline` when it gives up.
    fn apply(
        &self,
        target: Target,
        args: &[u8],
        patience: Patience,
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Failure> {
        self.with_connection(deadline, |c| match target {
            Target::Field { index, op } => {
                let (key, layout) = self.field(index)?;
                match store::native(c, &self.keys.share, key, layout, op, args) {
                    Some(outcome) => outcome,
                    None => {
                        let only = vec![usize::from(index)];
                        let access = (only.clone(), only);
                        self.transaction(c, (target, args), access, patience, deadline)
                    }
                }
            }
            Target::Method(index) => {
                let access = self.method_access(index);
                self.transaction(c, (target, args), access, patience, deadline)
            }
            Target::Whole(WholeOp::Get) => {
                let access = (self.all(), vec![]);
                self.transaction(c, (target, args), access, patience, deadline)
            }
            Target::Whole(WholeOp::Set) => {
                let access = (vec![], self.all());
                self.transaction(c, (target, args), access, patience, deadline)
            }
            Target::Whole(WholeOp::LastError) => {
                let recorded: Option<String> = redis::cmd("GET").arg(&self.keys.error).query(c)?;
                frame::encode(&recorded).map_err(|e| Failure::Failed(e.to_string()))
            }
        })
    }

    /// Runs `target` as a transaction over the fields `(reads, writes)`.
    fn transaction(
        &self,
        c: &mut Connection,
        (target, args): (Target, &[u8]),
        (reads, writes): (Vec<usize>, Vec<usize>),
        patience: Patience,
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Failure> {
        let plan = txn::Plan {
            keys: &self.keys,
            layouts: &self.layouts,
            reads,
            writes,
            cache: &self.cache,
            deadline,
        };
        plan.run::<T>(c, target, args, patience)
    }

    fn field(&self, index: u16) -> Result<(&str, &Layout), Failure> {
        let i = usize::from(index);
        match (self.keys.fields.get(i), self.layouts.get(i)) {
            (Some(key), Some(layout)) => Ok((key, layout)),
            _ => Err(Failure::Failed(format!("no field number {index}"))),
        }
    }

    fn all(&self) -> Vec<usize> {
        (0..self.keys.fields.len()).collect()
    }

    /// The fields method number `index` reads and writes, from `SHARED_META`: the whole
    /// value when the method could not be analysed or has no metadata.
    fn method_access(&self, index: u16) -> (Vec<usize>, Vec<usize>) {
        let Some(meta) = T::method_meta(index) else {
            return (self.all(), self.all());
        };
        let resolve = |names: &[&str]| -> Vec<usize> {
            if names.contains(&WHOLE_VALUE) {
                return self.all();
            }
            names
                .iter()
                .filter_map(|name| T::FIELDS.iter().position(|field| field == name))
                .collect()
        };
        let writes = if meta.is_write {
            resolve(meta.writes)
        } else {
            Vec::new()
        };
        (resolve(meta.reads), writes)
    }

    /// Runs `command` on this process's connection to the share, connecting first when there
    /// is none; a link failure drops it, so the next operation connects again. With a
    /// `deadline`, each command waits no longer than what is left of it (nor than
    /// [`COMMAND_TIMEOUT`]), and one cut short by it is [`Failure::Expired`].
    fn with_connection<R>(
        &self,
        deadline: Option<Deadline>,
        command: impl FnOnce(&mut Connection) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if deadline.is_some_and(|d| d.passed()) {
            return Err(Failure::Expired);
        }
        let wait = |limit: Duration| match deadline {
            // A zero timeout would mean none at all to the socket.
            Some(deadline) => deadline.left().min(limit).max(Duration::from_millis(1)),
            None => limit,
        };
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => match self.server.connect(wait(COMMAND_TIMEOUT)) {
                Ok(connection) => slot.insert(connection),
                Err(_) if deadline.is_some_and(|d| d.passed()) => return Err(Failure::Expired),
                Err(error) => return Err(Failure::Unreachable(error)),
            },
        };
        let limited = deadline.is_some() && set_timeouts(connection, wait(COMMAND_TIMEOUT)).is_ok();
        let mut outcome = command(connection);
        if matches!(outcome, Err(Failure::Link(_))) {
            if deadline.is_some_and(|d| d.passed()) {
                outcome = Err(Failure::Expired);
            }
            *slot = None;
        } else if matches!(outcome, Err(Failure::Expired))
            || (limited && set_timeouts(connection, COMMAND_TIMEOUT).is_err())
        {
            *slot = None;
        }
        outcome
    }

    /// Keeps `message` as the share's last error (on the server: every host reads it).
    fn record(&self, message: &str) {
        let _ = self.with_connection(None, |c| {
            Ok(redis::cmd("SET")
                .arg(&self.keys.error)
                .arg(message)
                .query::<()>(c)?)
        });
    }

    /// The crate's error for `failure` of the operation on `target`; an operation's own
    /// failure is recorded as the share's last error first.
    fn error(&self, failure: Failure, target: Option<Target>) -> Error {
        match failure {
            Failure::Link(error) => self.server.error(&error),
            Failure::Unreachable(error) => error,
            Failure::Expired => Deadline::expired_of(None),
            Failure::Gone => Error::Cluster {
                problem: format!(
                    "share {} is gone from redis at {} (its creating process ended more than {SHARE_TTL:?} ago, or the server lost its keys)",
                    self.id,
                    self.server.address()
                ),
            },
            Failure::Failed(message) => {
                let message = match target {
                    Some(target) if !message.starts_with('`') => {
                        format!("{}: {message}", describe::<T>(target))
                    }
                    _ => message,
                };
                self.record(&message);
                Error::Shared { message }
            }
            Failure::Contended(message) => {
                self.record(&message);
                Error::Shared { message }
            }
            Failure::Panicked { method, panic } => {
                self.record(&panicked_text(&method, &panic));
                Error::shared_method(method, panic)
            }
        }
    }
}

/// A handle's time limit (`Share::with_timeout`) bounds each command by what is left of it,
/// and no transaction attempt starts after it; past it the operation fails with
/// `Error::Timeout { of: Timed::Share }` (a write cut short may still have been applied, as a
/// local share's published write is).
impl<T: Shared> Backend for Redis<T> {
    fn write(&self, target: Target, args: &[u8], deadline: Option<Deadline>) -> Result<(), Error> {
        match self.apply(target, args, Patience::for_write(), deadline) {
            Ok(_) => Ok(()),
            Err(Failure::Expired) => Err(Deadline::expired_of(deadline)),
            Err(failure) => {
                // The operation's own failure (an overflow, a panic) is recorded as the last
                // error, as the local share does; a write lost for any other reason is
                // reported to the next call too.
                let own = matches!(failure, Failure::Failed(_) | Failure::Panicked { .. });
                let error = self.error(failure, Some(target));
                if !own {
                    let text = match &error {
                        Error::Cluster { problem } => problem.clone(),
                        other => other.to_string(),
                    };
                    *self
                        .unreported
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(text);
                }
                Err(error)
            }
        }
    }

    fn call(
        &self,
        target: Target,
        args: &[u8],
        deadline: Option<Deadline>,
    ) -> Result<Vec<u8>, Error> {
        let unreported = self
            .unreported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(text) = unreported {
            return Err(Error::Cluster {
                problem: format!("an earlier write was lost: {text}"),
            });
        }
        match self.apply(target, args, Patience::Attempts, deadline) {
            Err(Failure::Expired) => Err(Deadline::expired_of(deadline)),
            outcome => outcome.map_err(|failure| self.error(failure, Some(target))),
        }
    }
}

/// Bounds each command of `connection` by `limit`.
fn set_timeouts(connection: &mut Connection, limit: Duration) -> redis::RedisResult<()> {
    connection.set_read_timeout(Some(limit))?;
    connection.set_write_timeout(Some(limit))
}

/// The last handle in this process is gone: a lost write that no call came to report is
/// said in the log, never dropped silently.
impl<T> Drop for Redis<T> {
    fn drop(&mut self) {
        let unreported = self
            .unreported
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(text) = unreported {
            tracing::warn!(
                share = %self.id,
                "a write to the share was lost, and no call came after it to report it: {text}"
            );
        }
    }
}

/// The backend of a handle whose server cannot be named here: every operation fails with
/// the reason.
pub(super) struct Broken(pub(super) String);

impl Backend for Broken {
    fn write(&self, _: Target, _: &[u8], _: Option<Deadline>) -> Result<(), Error> {
        Err(Error::Cluster {
            problem: self.0.clone(),
        })
    }

    fn call(&self, _: Target, _: &[u8], _: Option<Deadline>) -> Result<Vec<u8>, Error> {
        Err(Error::Cluster {
            problem: self.0.clone(),
        })
    }
}
