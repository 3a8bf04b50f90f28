//! Per-process configuration, set in the attribute and overridable before `start`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a process runs. Build it from [`Process::default_config`](crate::Process::default_config)
/// (the attribute's values) and adjust it before [`Process::start_with`](crate::Process::start_with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// Number of iterations before the process finishes by itself; `None` runs until stopped.
    ///
    /// Default: `Some(1)`, so a first try always terminates.
    pub runs: Option<u64>,
    /// Largest frame, in bytes, either side accepts on the wire; bigger frames are an error.
    ///
    /// Default: 64 MiB.
    pub max_frame_bytes: u32,
    /// How long the parent waits for a freshly spawned child to connect and prove its token.
    ///
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// Directory in which the private socket directory is created; it is removed once the
    /// child has connected. Unused on Windows, where named pipes leave no file.
    ///
    /// Default: `None`, meaning [`std::env::temp_dir`].
    pub socket_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runs: Some(1),
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            socket_dir: None,
        }
    }
}

impl Config {
    /// Sets [`runs`](Config::runs).
    pub fn runs(mut self, runs: impl Into<Option<u64>>) -> Self {
        self.runs = runs.into();
        self
    }

    /// Sets [`max_frame_bytes`](Config::max_frame_bytes).
    pub fn max_frame_bytes(mut self, bytes: u32) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets [`connect_timeout`](Config::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`socket_dir`](Config::socket_dir).
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }
}
