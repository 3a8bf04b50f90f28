//! The cluster's hold on its Redis server: where it is, the password from the environment
//! (never from the URL, never serialized), for `rediss://` the CA file an environment variable
//! names (read in each process, never serialized), blocking connections with deadlines, the stream
//! commands a consumer group's readers share (the pool's hosts and the queue's readers: read,
//! list what is idle, claim, touch), and the few reply shapes the cluster reads.

use std::time::Duration;

use redis::{
    Client, Connection, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    TlsCertificates, Value,
};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::cluster::pool::claim::Pending;
use crate::error::Error;
use crate::reconnect::Secret;

/// The environment variable that holds the Redis password, unless the configuration names
/// another.
pub const PASSWORD_ENV: &str = "SKPROCESS_REDIS_PASSWORD";

/// How long a command may wait for its reply; blocking reads block for less.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that holds the path of a PEM file of the certificate authorities
/// to trust for a `rediss://` server instead of the system's, unless the configuration names
/// another.
pub const CA_ENV: &str = "SKPROCESS_REDIS_CA";

/// Where the server is: its URL without a password, the variable holding the password, and
/// the variable naming a CA file for TLS. `info` holds that CA's roots once read (in this
/// process only: what travels to other processes is the URL and the variables' names).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    url: String,
    info: ConnectionInfo,
    password_env: String,
    ca_env: String,
    address: String,
}

impl Server {
    /// The server at `url`, which must carry no password (it goes in `password_env`). For a
    /// `rediss://` url, the file named by `ca_env` (when set) is read now, so a missing or
    /// unreadable CA is a configuration error here rather than a failure at each connection.
    pub(crate) fn parse(url: &str, password_env: &str, ca_env: &str) -> Result<Self, Error> {
        let mut info = url.into_connection_info().map_err(|e| Error::Config {
            problem: format!("invalid redis url: {e}"),
        })?;
        if info.redis.password.is_some() {
            return Err(Error::Config {
                problem: format!(
                    "the redis url carries a password; put it in the environment variable {password_env} instead"
                ),
            });
        }
        if matches!(info.addr, ConnectionAddr::TcpTls { insecure: true, .. }) {
            // The redis crate would refuse it at every connection (this build leaves out its
            // `tls-rustls-insecure`); say why once, here, with the way to trust the server.
            return Err(Error::Config {
                problem: format!(
                    "a rediss:// url with #insecure is refused: certificates are always \
                     verified; to trust a private CA put its PEM file's path in {ca_env}"
                ),
            });
        }
        if matches!(info.addr, ConnectionAddr::TcpTls { .. }) {
            if let Some(pem) = read_ca(ca_env)? {
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                // Parses the roots into the connection info, which every connection clones.
                let client =
                    Client::build_with_tls(info, certificates).map_err(|e| Error::Config {
                        problem: format!("the CA file named by {ca_env}: {e}"),
                    })?;
                info = client.get_connection_info().clone();
            }
        }
        let address = info.addr.to_string();
        Ok(Self {
            url: url.to_owned(),
            info,
            password_env: password_env.to_owned(),
            ca_env: ca_env.to_owned(),
            address,
        })
    }

    /// The URL it was made from (it carries no password).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The variable that holds the password.
    pub(crate) fn password_env(&self) -> &str {
        &self.password_env
    }

    /// The variable that names the CA file.
    pub(crate) fn ca_env(&self) -> &str {
        &self.ca_env
    }

    /// The server's address, for messages.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// A new connection whose commands time out after [`COMMAND_TIMEOUT`].
    pub(crate) fn connect(&self, timeout: Duration) -> Result<Connection, Error> {
        let mut info = self.info.clone();
        if let Ok(secret) = Secret::from_env(&self.password_env) {
            info.redis.password = Some(secret.expose().to_owned());
        }
        let connection = Client::open(info)
            .and_then(|client| client.get_connection_with_timeout(timeout))
            .and_then(|connection| {
                connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
                Ok(connection)
            });
        connection.map_err(|e| self.error(&e))
    }

    /// `error` as the crate's error, naming the server.
    pub(crate) fn error(&self, error: &RedisError) -> Error {
        Error::Cluster {
            problem: format!("redis at {}: {error}", self.address),
        }
    }
}

/// The PEM certificates in the file whose path the variable `ca_env` holds; `None` when it is
/// unset or empty (the system's roots are trusted then).
fn read_ca(ca_env: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(path) = std::env::var_os(ca_env).filter(|path| !path.is_empty()) else {
        return Ok(None);
    };
    let path = std::path::Path::new(&path);
    let pem = std::fs::read(path).map_err(|e| Error::Config {
        problem: format!(
            "cannot read the CA file {} named by {ca_env}: {e}",
            path.display()
        ),
    })?;
    // An empty trust store would refuse every server with a misleading "unknown issuer".
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .filter(Result::is_ok)
        .count();
    if certificates == 0 {
        return Err(Error::Config {
            problem: format!(
                "the CA file {} named by {ca_env} holds no PEM certificate",
                path.display()
            ),
        });
    }
    Ok(Some(pem))
}

/// Whether `error` is a reply saying the consumer group (or its stream) does not exist: the
/// server restarted or the stream was deleted, and the group must be made again.
pub(crate) fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

/// Makes the consumer group `group` of `stream` (and the stream), reading from the start;
/// a group that exists already is left as it is.
pub(crate) fn ensure_group(
    connection: &mut Connection,
    stream: &str,
    group: &str,
) -> Result<(), RedisError> {
    let made = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(connection);
    match made {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// `XREADGROUP` of at most `count` new entries of `stream` for `consumer` of `group`, waiting
/// up to `block_ms` for one (0: not at all — `BLOCK 0` would wait forever, so it is left
/// out). Built, not sent, so a caller can pipeline it behind its acknowledgements.
pub(crate) fn read_group(
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
    block_ms: u64,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if block_ms > 0 {
        cmd.arg("BLOCK").arg(block_ms);
    }
    cmd.arg("STREAMS").arg(stream).arg(">");
    cmd
}

/// At most `count` entries of `group` pending (delivered, not acknowledged) and idle for at
/// least `idle`: `XPENDING … IDLE`, oldest first.
pub(crate) fn pending_idle(
    connection: &mut Connection,
    stream: &str,
    group: &str,
    idle: Duration,
    count: usize,
) -> Result<Vec<Pending>, RedisError> {
    let rows: Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("IDLE")
        .arg(millis(idle))
        .arg("-")
        .arg("+")
        .arg(count)
        .query(connection)?;
    Ok(pending_rows(&rows))
}

/// Takes the pending entry `id` over for `consumer` if it is still idle for at least
/// `min_idle` (so two claimers never both get it), counting a delivery; its entry when it
/// was taken (none when another was first, or the entry was deleted).
pub(crate) fn claim(
    connection: &mut Connection,
    stream: &str,
    group: &str,
    consumer: &str,
    min_idle: Duration,
    id: &str,
) -> Result<Vec<StreamEntry>, RedisError> {
    let claimed: Value = redis::cmd("XCLAIM")
        .arg(stream)
        .arg(group)
        .arg(consumer)
        .arg(millis(min_idle))
        .arg(id)
        .query(connection)?;
    Ok(entries(&claimed))
}

/// Resets the idle time of the pending entries `ids` (now `consumer`'s), without counting a
/// delivery: they are held by someone alive.
pub(crate) fn touch(
    connection: &mut Connection,
    stream: &str,
    group: &str,
    consumer: &str,
    ids: &[String],
) -> Result<(), RedisError> {
    if ids.is_empty() {
        return Ok(());
    }
    redis::cmd("XCLAIM")
        .arg(stream)
        .arg(group)
        .arg(consumer)
        .arg(0)
        .arg(ids)
        .arg("JUSTID")
        .query::<Value>(connection)
        .map(drop)
}

/// A duration in whole milliseconds, as the server takes it.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The rows of an extended `XPENDING` reply: `[id, consumer, idle ms, deliveries]` each.
fn pending_rows(reply: &Value) -> Vec<Pending> {
    items(reply)
        .iter()
        .filter_map(|row| match items(row) {
            [id, consumer, idle, deliveries] => Some(Pending {
                id: text(id)?,
                consumer: text(consumer)?,
                idle: Duration::from_millis(u64::try_from(int(idle)?).ok()?),
                deliveries: u64::try_from(int(deliveries)?).ok()?,
            }),
            _ => None,
        })
        .collect()
}

/// One stream entry: its id and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of `name`, if the entry has it.
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value.as_slice())
    }
}

/// The bytes of a string reply.
pub(crate) fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.as_bytes().to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A string reply as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|bytes| String::from_utf8(bytes).ok())
}

/// An integer reply (also one sent as text).
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// The elements of an array (or set) reply; none for a nil.
pub(crate) fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// Entries of a list of `[id, [field, value, …]]` (what `XCLAIM` and `XRANGE` answer, and each
/// stream of an `XREADGROUP`); a deleted entry (a nil body) comes with no fields.
pub(crate) fn entries(value: &Value) -> Vec<StreamEntry> {
    items(value)
        .iter()
        .filter_map(|entry| {
            let [id, body] = items(entry) else {
                return None;
            };
            let flat = items(body);
            let fields = flat
                .chunks_exact(2)
                .filter_map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?)))
                .collect();
            Some(StreamEntry {
                id: text(id)?,
                fields,
            })
        })
        .collect()
}

/// The entries of an `XREADGROUP` reply on one stream (nil when the block timed out).
pub(crate) fn read_group_entries(value: &Value) -> Vec<StreamEntry> {
    match value {
        Value::Map(streams) => streams.iter().flat_map(|(_, v)| entries(v)).collect(),
        other => items(other)
            .iter()
            .flat_map(|stream| match items(stream) {
                [_, list] => entries(list),
                _ => Vec::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_url_with_a_password_is_refused_naming_the_variable() {
        let error =
            Server::parse("redis://:hunter2@127.0.0.1:6379/0", PASSWORD_ENV, CA_ENV).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(PASSWORD_ENV), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(Server::parse("redis://127.0.0.1:6379/0", PASSWORD_ENV, CA_ENV).is_ok());
        let tls = Server::parse("rediss://:hunter2@127.0.0.1:6379/0", PASSWORD_ENV, CA_ENV);
        assert!(tls.is_err_and(|e| !e.to_string().contains("hunter2")));
    }

    #[test]
    fn the_ca_file_is_read_for_tls_urls_only() {
        // An unset variable: the system's roots.
        let unset = "SKPROCESS_TEST_NO_SUCH_CA_VARIABLE";
        assert!(Server::parse("rediss://127.0.0.1:6379/0", PASSWORD_ENV, unset).is_ok());
        // `HOME` names a directory, unreadable as a file: refused for TLS, ignored without.
        let error = Server::parse("rediss://127.0.0.1:6379/0", PASSWORD_ENV, "HOME").unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
        assert!(Server::parse("redis://127.0.0.1:6379/0", PASSWORD_ENV, "HOME").is_ok());
        let insecure = Server::parse("rediss://127.0.0.1:6379/#insecure", PASSWORD_ENV, CA_ENV);
        assert!(insecure.is_err_and(|e| e.to_string().contains(CA_ENV)));
    }

    #[test]
    fn read_group_replies_are_taken_apart() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("build"), bulk("ab"), bulk("job"), bulk("j")]),
        ]);
        let deleted = Value::Array(vec![bulk("2-0"), Value::Nil]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("skp:n:items"),
            Value::Array(vec![entry, deleted]),
        ])]);
        let entries = read_group_entries(&reply);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(entries[0].field("job"), Some(&b"j"[..]));
        assert_eq!(entries[1].fields, vec![]);
        assert!(read_group_entries(&Value::Nil).is_empty());
    }
}
