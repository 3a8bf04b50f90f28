//! The cluster over TLS (`rediss://`) on a real `redis-server` listening with TLS, its
//! certificate signed by a CA made at run time: a pool map and a share on a host that trust
//! the CA through `SKPROCESS_REDIS_CA`, and the clear errors of a client that does not trust
//! it and of a CA file that cannot be read. Every wait is bounded.
// Unix by nature: the hosts are process groups, SIGKILLed whole (tests/support/hosts.rs).
#![cfg(unix)]

use std::sync::Once;
use std::time::{Duration, Instant};

use skprocess::cluster::{CA_ENV, Cluster, ClusterConfig};
use skprocess::prelude::*;

skprocess::test_support!();

#[path = "support/bound.rs"]
mod bound;
#[path = "support/hosts.rs"]
mod hosts;
#[path = "support/redis.rs"]
mod redis_server;

use hosts::Host;
use redis_server::{RedisServer, test_ca};

/// The longest any test here may take before the binary aborts, naming it.
const TEST_BOUND: Duration = Duration::from_secs(180);

/// How long a host may take to start and join.
const JOIN: Duration = Duration::from_secs(60);

/// How long a refused connection may take to say so.
const REFUSAL: Duration = Duration::from_secs(30);

/// Makes this process trust the test CA through [`CA_ENV`], as a deployment would; the local
/// workers and the hosts inherit it.
fn trust_the_test_ca() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let path = &test_ca().ca;
        // SAFETY: set once, to the same value for every test of this binary, before any of
        // them connects with it; the other threads read the environment only through `std`,
        // which takes the same lock as `set_var`.
        unsafe { std::env::set_var(CA_ENV, path) };
    });
}

#[shared]
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Hits {
    count: u64,
    squares: u64,
}

/// One item on the host: counts itself in the share (over the host's own TLS connection).
fn square_and_count((share, x): (Share<Hits>, u64)) -> u64 {
    let mut share = share;
    share.count += 1;
    share.squares += x * x;
    x * x
}

#[test]
fn a_pool_map_and_a_share_work_over_rediss_with_a_private_ca() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    trust_the_test_ca();
    let url = server.tls_url();
    let ca = test_ca().ca.to_string_lossy().into_owned();
    let _host = Host::start(&url, "tls-map", 1, &[(CA_ENV, &ca)]);
    let cluster = Cluster::redis(&url, "tls-map").expect("the cluster over TLS");
    let deadline = Instant::now() + JOIN;
    while cluster.hosts().map_or(0, |h| h.len()) < 1 {
        assert!(Instant::now() < deadline, "the host did not join over TLS");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pool = Pool::on(&cluster).unwrap();
    assert_eq!(
        pool.map(|x: u64| x * x, 0..20u64).unwrap(),
        (0..20u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let share = Share::on(&cluster, Hits::default()).unwrap();
    let items: Vec<_> = (0..10u64).map(|x| (share.clone(), x)).collect();
    assert_eq!(pool.map(square_and_count, items).unwrap().len(), 10);
    let value = share.get().unwrap();
    assert_eq!(
        (value.count, value.squares),
        (10, (0..10u64).map(|x| x * x).sum()),
        "the share's last error: {:?}",
        share.last_error()
    );
    // That port speaks TLS only: what worked above went through TLS.
    let plain = url.replacen("rediss://", "redis://", 1);
    let refused = bound::on_thread(REFUSAL, "a plain connection to the TLS port", move || {
        Cluster::redis(&plain, "tls-plain").map(|_| ())
    });
    assert!(refused.is_err(), "the TLS port answered a plain client");
}

#[test]
fn a_client_that_does_not_trust_the_ca_gets_a_cluster_error() {
    let _bound = bound::within(TEST_BOUND);
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let url = server.tls_url();
    // A variable that is unset: the system's roots, which do not hold the test CA.
    let config = ClusterConfig::default().ca_env("SKPROCESS_TEST_NO_SUCH_CA");
    let error = bound::on_thread(REFUSAL, "connecting without trusting the CA", move || {
        Cluster::redis_with(&url, "tls-untrusted", config)
    })
    .expect_err("a server signed by an unknown CA was trusted");
    let text = error.to_string();
    assert!(
        matches!(error, skprocess::Error::Cluster { .. }),
        "{error:?}"
    );
    assert!(text.contains("certificate"), "{text}");
}

#[test]
fn a_ca_file_that_cannot_be_read_is_a_config_error() {
    // `HOME` names a directory, which cannot be read as a file; refused before connecting.
    let config = ClusterConfig::default().ca_env("HOME");
    let error = Cluster::redis_with("rediss://127.0.0.1:1/0", "tls-no-ca", config).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, skprocess::Error::Config { .. }),
        "{error:?}"
    );
    assert!(text.contains("CA file") && text.contains("HOME"), "{text}");
}
