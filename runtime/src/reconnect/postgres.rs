//! PostgreSQL (`postgres`, blocking): reopened from a connection string that carries no
//! password; the password is the field's secret.

use std::str::FromStr;
use std::time::Duration;

use postgres::{Client, Config, NoTls};
use serde::{Deserialize, Serialize};

use crate::reconnect::{Reconnect, ReconnectError, Secret, open_error};

/// How long opening waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a `postgres::Client` again: a connection string (`host=… user=… dbname=…` or
/// a `postgres://user@host/db` URL) **without** a password. Connections are made without TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostgresRecipe {
    /// The connection string.
    pub params: String,
}

impl PostgresRecipe {
    /// A recipe from a connection string that must not carry a password (it would be
    /// serialized with the process state); give the password as the field's secret.
    pub fn new(params: impl Into<String>) -> Result<Self, ReconnectError> {
        let recipe = Self {
            params: params.into(),
        };
        recipe.config()?;
        Ok(recipe)
    }

    fn config(&self) -> Result<Config, ReconnectError> {
        let config = Config::from_str(&self.params).map_err(|e| {
            ReconnectError::Unsupported(format!("invalid postgres connection string: {e}"))
        })?;
        if config.get_password().is_some() {
            return Err(ReconnectError::Unsupported(
                "the postgres connection string carries a password, which would be serialized; give it as a secret (`#[autoreconnect(postgres(\"*\" = \"VARIABLE\"))]`)".into(),
            ));
        }
        Ok(config)
    }

    /// Where it connects, for messages (never the password, which the string does not hold).
    fn target(config: &Config) -> String {
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "{}/{}",
            hosts.join(","),
            config.get_dbname().unwrap_or_default()
        )
    }
}

impl Reconnect for Client {
    type Recipe = PostgresRecipe;
    const KIND: &'static str = "postgres";

    fn open(recipe: &PostgresRecipe, secret: Option<&Secret>) -> Result<Self, ReconnectError> {
        let mut config = recipe.config()?;
        if let Some(secret) = secret {
            config.password(secret.expose());
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config
            .connect(NoTls)
            .map_err(|e| open_error(Self::KIND, PostgresRecipe::target(&config), e))
    }
}
