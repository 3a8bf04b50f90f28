//! The one backend per process and share that handles link to: made on first use by a handle
//! that arrived, or registered by the process that created the share. Apart from `mod.rs` so
//! the share's handle links without importing the code that creates shares.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use crate::cluster::share::backend;
use crate::cluster::share::remote::Remote;
use crate::share::Shared;
use crate::share::link::{Backend, Link};

/// The link of a handle that arrived in this process: one backend (one connection) per
/// process and share, made on first use. A handle whose server cannot be named (a bad URL)
/// fails every operation with the reason.
pub(crate) fn link_to<T: Shared>(remote: &Remote) -> Link {
    let key = remote.registry_key();
    let mut shares = registry();
    if let Some(backend) = shares.get(&key).and_then(Weak::upgrade) {
        return Link::new(backend, None, None);
    }
    let backend: Arc<dyn Backend> = match backend::Redis::<T>::new(remote) {
        Ok(backend) => Arc::new(backend),
        Err(error) => Arc::new(backend::Broken(error.to_string())),
    };
    shares.retain(|_, weak| weak.strong_count() > 0);
    shares.insert(key, Arc::downgrade(&backend));
    Link::new(backend, None, None)
}

pub(super) fn register<T: Shared>(remote: &Remote, backend: Arc<backend::Redis<T>>) -> Link {
    let backend: Arc<dyn Backend> = backend;
    registry().insert(remote.registry_key(), Arc::downgrade(&backend));
    Link::new(backend, None, None)
}

type Registry = HashMap<String, Weak<dyn Backend>>;

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static SHARES: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
    SHARES.lock().unwrap_or_else(PoisonError::into_inner)
}
