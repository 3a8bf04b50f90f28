//! The one cache of client connections to long-lived endpoints, keyed by the endpoint's token.
//!
//! A feature that reaches a server from many calls keeps its client here instead of opening a
//! connection per call: [`Clients::with`] opens the client on first use, hands it to the call,
//! and forgets it when the call reports that it broke, so the next call connects afresh (a
//! failed open leaves nothing behind either). Clients that many handles share are held weakly
//! ([`Clients::shared`]): the last handle's drop ends the client, and the cache prunes dead
//! entries whenever it makes a new one.
//!
//! The cache holds no lock of its own, so one type serves both flavours: a per-process cache
//! is a `static` behind a `Mutex` (the share's clients, the log forwarder's collector), a
//! per-thread one a `thread_local!` (a queue reader's prefetched batch belongs to its thread).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use crate::transport::service::Endpoint;

/// Clients of type `C`, one per endpoint token.
#[derive(Debug)]
pub(crate) struct Clients<C> {
    entries: BTreeMap<String, C>,
}

impl<C> Clients<C> {
    /// An empty cache; `const`, so it can initialise a `static` or a `thread_local!`.
    pub(crate) const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Runs `call` on the client of `endpoint`, opening it with `open` first when none is
    /// held. When `call` fails with an error that `broken` accepts, the client is dropped, so
    /// the next call opens a fresh one. An `open` that fails caches nothing.
    pub(crate) fn with<R, E>(
        &mut self,
        endpoint: &Endpoint,
        open: impl FnOnce(&Endpoint) -> Result<C, E>,
        call: impl FnOnce(&mut C) -> Result<R, E>,
        broken: impl FnOnce(&E) -> bool,
    ) -> Result<R, E> {
        let client = match self.entries.entry(endpoint.token.clone()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => entry.insert(open(endpoint)?),
        };
        let result = call(client);
        if let Err(error) = &result {
            if broken(error) {
                self.entries.remove(&endpoint.token);
            }
        }
        result
    }

    /// The client of `endpoint` when one is held; never opens one.
    pub(crate) fn get_mut(&mut self, endpoint: &Endpoint) -> Option<&mut C> {
        self.entries.get_mut(&endpoint.token)
    }

    /// How many clients are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<C> Clients<Weak<C>> {
    /// The client of `endpoint` that every handle in this cache's scope shares: the live one,
    /// or a new one from `make` (which opens nothing; such a client connects on its first use
    /// and again after its connection broke). Entries whose client has been dropped are pruned
    /// whenever a new one is made, so the cache never outgrows the clients in use.
    pub(crate) fn shared(
        &mut self,
        endpoint: &Endpoint,
        make: impl FnOnce(&Endpoint) -> C,
    ) -> Arc<C> {
        if let Some(client) = self.entries.get(&endpoint.token).and_then(Weak::upgrade) {
            return client;
        }
        self.entries.retain(|_, client| client.strong_count() > 0);
        let client = Arc::new(make(endpoint));
        self.entries
            .insert(endpoint.token.clone(), Arc::downgrade(&client));
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(token: &str) -> Endpoint {
        Endpoint {
            address: "@skp-test".into(),
            token: token.to_owned(),
        }
    }

    /// A stand-in client: which connection it is.
    #[derive(Debug)]
    struct Fake(u32);

    #[derive(Debug, PartialEq)]
    enum Failure {
        Broken,
        Refused,
        Busy,
    }

    /// Opens connection number `opened + 1`.
    fn opener(opened: &mut u32) -> impl FnOnce(&Endpoint) -> Result<Fake, Failure> + '_ {
        move |_| {
            *opened += 1;
            Ok(Fake(*opened))
        }
    }

    fn is_broken(error: &Failure) -> bool {
        *error == Failure::Broken
    }

    #[test]
    fn a_client_is_opened_once_and_reused() {
        let mut clients = Clients::new();
        let mut opened = 0;
        for _ in 0..3 {
            let seen = clients.with(&endpoint("a"), opener(&mut opened), |c| Ok(c.0), is_broken);
            assert_eq!(seen, Ok(1));
        }
        assert_eq!(opened, 1);
        assert_eq!(clients.len(), 1);
    }

    /// Opens a client, fails a call on it with `failure`, then calls again: which connection
    /// the second call got.
    fn after_failure(failure: Failure) -> Result<u32, Failure> {
        let mut clients = Clients::new();
        let mut opened = 0;
        let a = endpoint("a");
        let failed = clients.with(
            &a,
            opener(&mut opened),
            |_| Err::<(), _>(failure),
            is_broken,
        );
        assert!(failed.is_err());
        clients.with(&a, opener(&mut opened), |c| Ok(c.0), is_broken)
    }

    #[test]
    fn a_broken_client_is_dropped_and_the_next_call_reconnects() {
        assert_eq!(
            after_failure(Failure::Broken),
            Ok(2),
            "the next call did not reconnect"
        );
    }

    #[test]
    fn an_error_that_is_not_a_break_keeps_the_client() {
        assert_eq!(after_failure(Failure::Busy), Ok(1));
    }

    #[test]
    fn a_failed_open_caches_nothing_and_the_next_call_tries_again() {
        let mut clients: Clients<Fake> = Clients::new();
        let a = endpoint("a");
        let refused = clients.with(&a, |_| Err(Failure::Refused), |c| Ok(c.0), is_broken);
        assert_eq!(refused, Err(Failure::Refused));
        assert_eq!(clients.len(), 0);
        let mut opened = 0;
        assert_eq!(
            clients.with(&a, opener(&mut opened), |c| Ok(c.0), is_broken),
            Ok(1)
        );
    }

    #[test]
    fn endpoints_with_other_tokens_get_their_own_clients() {
        let mut clients = Clients::new();
        let mut opened = 0;
        let first = clients.with(&endpoint("a"), opener(&mut opened), |c| Ok(c.0), is_broken);
        let second = clients.with(&endpoint("b"), opener(&mut opened), |c| Ok(c.0), is_broken);
        assert_eq!((first, second), (Ok(1), Ok(2)));
        assert!(clients.get_mut(&endpoint("c")).is_none());
    }

    #[test]
    fn a_shared_client_is_the_same_while_a_handle_holds_it() {
        let mut clients = Clients::new();
        let first = clients.shared(&endpoint("a"), |_| Fake(1));
        let again = clients.shared(&endpoint("a"), |_| Fake(2));
        assert!(Arc::ptr_eq(&first, &again));
        drop((first, again));
        let fresh = clients.shared(&endpoint("a"), |_| Fake(3));
        assert_eq!(fresh.0, 3, "a dropped client was handed out again");
    }

    #[test]
    fn dead_shared_clients_are_pruned_when_a_new_one_is_made() {
        let mut clients = Clients::new();
        let kept = clients.shared(&endpoint("kept"), |_| Fake(0));
        for i in 0..10 {
            drop(clients.shared(&endpoint(&format!("gone-{i}")), |_| Fake(i)));
        }
        assert!(clients.len() <= 2, "{} entries held", clients.len());
        let _other = clients.shared(&endpoint("other"), |_| Fake(11));
        assert_eq!(clients.len(), 2, "only the live clients remain");
        assert!(Arc::ptr_eq(
            &kept,
            &clients.shared(&endpoint("kept"), |_| Fake(12))
        ));
    }
}
