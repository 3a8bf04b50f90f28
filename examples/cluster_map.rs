//! A map over two worker hosts through Redis: the same `Pool` API, with items running on
//! other processes that could be other machines.
//!
//! Run it with `cargo run --example cluster_map`. It uses the Redis server at `REDIS_URL`
//! when that is set, and otherwise starts a `redis-server` of its own on a free port. The two
//! hosts are this same binary started again with `SKPROCESS_SERVE=<url>/<cluster>`: on
//! another machine you would start the same binary the same way.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skprocess::cluster::Cluster;
use skprocess::prelude::*;

/// An item's square and the host that computed it.
fn square_where(x: u64) -> (u64, String) {
    std::thread::sleep(Duration::from_millis(20));
    let host = std::env::var("HOST_LABEL").unwrap_or_else(|_| "?".into());
    (x * x, format!("{host} (pid {})", std::process::id()))
}

/// Kills its processes when dropped, so nothing outlives the example.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        // Hosts first, then the server they use.
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[skprocess::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut children = Children(Vec::new());
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(_) => match start_redis(&mut children)? {
            Some(url) => url,
            None => {
                println!("no REDIS_URL and no redis-server installed: nothing to map over");
                return Ok(());
            }
        },
    };
    let name = format!("cluster-map-{}", std::process::id());
    for label in ["host-a", "host-b"] {
        let host = Command::new(std::env::current_exe()?)
            .env(skprocess::cluster::SERVE_ENV, format!("{url}/{name}"))
            .env(skprocess::cluster::SERVE_WORKERS_ENV, "1")
            .env("HOST_LABEL", label)
            .stdin(Stdio::null())
            .spawn()?;
        children.0.push(host);
    }
    let cluster = Cluster::redis(&url, &name)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.hosts()?.len() < 2 {
        if Instant::now() > deadline {
            return Err("the two hosts did not join within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for host in cluster.hosts()? {
        println!(
            "host {} joined: {} worker(s), same build: {}",
            host.id,
            host.cores,
            host.is_same_build()
        );
    }
    let pool = Pool::on(&cluster)?;
    let squares = pool.map(square_where, 0..12u64)?;
    for (x, (square, host)) in squares.iter().enumerate() {
        println!("{x:>2}² = {square:>3}   ran on {host}");
    }
    assert!(
        squares
            .iter()
            .enumerate()
            .all(|(x, (s, _))| *s == (x * x) as u64),
        "every square is right"
    );
    Ok(())
}

/// Starts `redis-server` on a free port of 127.0.0.1; its URL, or `None` when it is not
/// installed.
fn start_redis(children: &mut Children) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    let Ok(server) = spawned else {
        return Ok(None);
    };
    children.0.push(server);
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Cluster::redis(&url, "probe").is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not answer within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("started redis-server on port {port}");
    Ok(Some(url))
}
