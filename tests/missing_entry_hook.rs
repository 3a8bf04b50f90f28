//! A binary without the entry hook: its re-executed child must fail loudly, never spawn again.
//!
//! This file deliberately has no `skprocess::test_support!()`.

use skprocess::prelude::*;

#[path = "support/bound.rs"]
mod bound;

#[derive(Serialize, Deserialize)]
struct Probe;

#[skprocess]
impl Probe {
    fn run(&mut self) {}
}

#[test]
fn a_child_that_reaches_user_code_without_the_entry_hook_fails_loudly() {
    let _bound = bound::within(std::time::Duration::from_secs(300));
    let error = Probe.start().unwrap_err();
    match &error {
        Error::Bootstrap { detail } => {
            assert!(detail.contains("without the entry hook"), "{detail}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(error.to_string().contains("skprocess::init()"), "{error}");
}
