//! What a handle to a share on a cluster carries between processes: where the share is,
//! never the password.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cluster::Server;
use crate::cluster::keys::Keys;
use crate::error::Error;

/// What a handle to a share on a cluster carries to another process: no password, only the
/// variable that holds it there.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Remote {
    pub(super) url: String,
    pub(super) password_env: String,
    /// The variable naming the CA file there: the path may differ per machine.
    pub(super) ca_env: String,
    pub(super) cluster: String,
    pub(super) id: String,
}

impl Remote {
    pub(super) fn new(
        url: String,
        password_env: String,
        ca_env: String,
        cluster: String,
        id: String,
    ) -> Self {
        Self {
            url,
            password_env,
            ca_env,
            cluster,
            id,
        }
    }

    pub(super) fn server(&self) -> Result<Server, Error> {
        Server::parse(&self.url, &self.password_env, &self.ca_env)
    }

    pub(super) fn keys(&self) -> Result<Keys, Error> {
        crate::cluster::keys::check_name(&self.cluster)
            .map_err(|problem| Error::Config { problem })?;
        crate::cluster::keys::check_name(&self.id).map_err(|problem| Error::Config { problem })?;
        Ok(Keys::new(&self.cluster))
    }

    pub(super) fn registry_key(&self) -> String {
        format!("{} {} {}", self.url, self.cluster, self.id)
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} share {} of cluster {}",
            self.url, self.id, self.cluster
        )
    }
}
