//! Redis (`redis`, blocking): reopened from a URL that carries no password; the password is
//! the field's secret.

use std::time::Duration;

use redis::{Client, Connection, IntoConnectionInfo};
use serde::{Deserialize, Serialize};

use crate::reconnect::{Reconnect, ReconnectError, Secret, open_error};

/// How long opening waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a `redis::Connection` again: a `redis://host:port/db` URL **without** a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RedisRecipe {
    /// The server's URL.
    pub url: String,
}

impl RedisRecipe {
    /// A recipe from a URL that must not carry a password (it would be serialized with the
    /// process state); give the password as the field's secret.
    pub fn new(url: impl Into<String>) -> Result<Self, ReconnectError> {
        let recipe = Self { url: url.into() };
        recipe.info()?;
        Ok(recipe)
    }

    fn info(&self) -> Result<redis::ConnectionInfo, ReconnectError> {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| ReconnectError::Unsupported(format!("invalid redis url: {e}")))?;
        if info.redis.password.is_some() {
            return Err(ReconnectError::Unsupported(
                "the redis url carries a password, which would be serialized; give it as a secret (`#[autoreconnect(redis(\"*\" = \"VARIABLE\"))]`)".into(),
            ));
        }
        Ok(info)
    }
}

impl Reconnect for Connection {
    type Recipe = RedisRecipe;
    const KIND: &'static str = "redis";

    fn open(recipe: &RedisRecipe, secret: Option<&Secret>) -> Result<Self, ReconnectError> {
        let mut info = recipe.info()?;
        if let Some(secret) = secret {
            info.redis.password = Some(secret.expose().to_owned());
        }
        let target = info.addr.to_string();
        Client::open(info)
            .and_then(|client| client.get_connection_with_timeout(CONNECT_TIMEOUT))
            .map_err(|e| open_error(Self::KIND, target, e))
    }
}
