//! The cluster benches' rig: a Redis server (`REDIS_URL` when set, else a `redis-server` started
//! on a free port) and worker hosts that are the bench binary started again with
//! `SKPROCESS_SERVE`; all of them killed, hosts first, when the rig is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skprocess::cluster::{Cluster, SERVE_ENV, SERVE_WORKERS_ENV};

/// The server and hosts the bench started, killed when it ends (the hosts first, so none
/// reports the server going away).
pub struct Rig {
    children: Vec<Child>,
    /// The server's URL, without a trailing slash.
    pub url: String,
    /// The cluster's name, unique to this bench process.
    pub name: String,
}

impl Rig {
    /// A server and `hosts` hosts of `workers` workers each, serving a cluster named
    /// `<prefix>-<pid>`; returns once every host has joined.
    pub fn start(prefix: &str, hosts: usize, workers: usize) -> (Self, Cluster) {
        let mut rig = Rig {
            children: Vec::new(),
            url: String::new(),
            name: format!("{prefix}-{}", std::process::id()),
        };
        rig.url = match std::env::var("REDIS_URL") {
            Ok(url) => url.trim_end_matches('/').to_owned(),
            Err(_) => rig.start_redis(),
        };
        for _ in 0..hosts {
            let host = Command::new(std::env::current_exe().unwrap())
                .env(SERVE_ENV, format!("{}/{}", rig.url, rig.name))
                .env(SERVE_WORKERS_ENV, workers.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            rig.children.push(host);
        }
        let cluster = Cluster::redis(&rig.url, &rig.name).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.hosts().unwrap().len() < hosts {
            assert!(Instant::now() < deadline, "the hosts did not join");
            std::thread::sleep(Duration::from_millis(20));
        }
        (rig, cluster)
    }

    /// Starts a `redis-server` on a free port and returns its URL once it answers.
    fn start_redis(&mut self) -> String {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (install it, or set REDIS_URL)");
        self.children.push(server);
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Cluster::redis(&url, "probe").is_err() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        url
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
