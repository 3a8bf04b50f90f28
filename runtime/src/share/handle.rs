//! The public handle of a shared value.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::protocol::share::{Target, WholeOp};
use crate::share::Shared;
use crate::share::client;
use crate::share::coordinator::{Control, Coordinator};
use crate::share::link::Link;
use crate::transport::endpoint::Endpoint;

/// A value of type `T` shared by every process that holds a handle to it.
///
/// ```ignore
/// use skprocess::prelude::*;
///
/// #[shared]
/// #[derive(Default, Serialize, Deserialize)]
/// struct Tally { counter: u64, results: Vec<u64> }
///
/// let mut share = Share::new(Tally::default())?;
/// share.counter += 1;            // one operation on the coordinator, fire-and-forget
/// share.results.push(7);         // likewise
/// assert_eq!(share.counter.get()?, 1);
/// assert_eq!(share.results.len()?, 1);
/// ```
///
/// `Share::new` starts a coordinator thread in this process that owns the value. The handle
/// dereferences to the proxy `#[shared]` generates (a [`Field`](crate::Field) per field, plus
/// the methods of a `#[shared] impl`): every field operation and method call is one operation
/// applied by the coordinator to the live value, whichever process makes it.
///
/// - **Writes** that return nothing (`+=`, `push`, `set`, methods returning `()`) are
///   fire-and-forget and applied in the order this process issued them.
/// - **Calls** that return a value (`get`, `len`, `pop`, methods returning a value) wait for it
///   and return `Result<_, Error>`.
/// - **Guarantee**: a read observes every write whose call returned before the read began, in
///   any process.
///
/// Clone a handle to give it to a process: it is `Serialize + Deserialize`, travels inside a
/// process's state or a pool item, and connects on first use in the child (and again in a
/// restarted child). The coordinator stops when the creating process's last handle is dropped.
///
/// **Time limits.** A call waits as long as the coordinator needs: a call from another process
/// waits while the share is paused or the creating process is stopped. A handle made by
/// [`with_timeout`](Share::with_timeout) gives up instead, with [`Error::Timeout`]
/// ([`Timed::Share`](crate::error::Timed::Share)); [`get_timeout`](Share::get_timeout) does so
/// for one read of the whole value.
pub struct Share<T: Shared> {
    link: Link,
    place: Place,
    proxy: T::Proxy,
    /// Only in the process that created the share.
    owner: Option<Arc<dyn Control>>,
}

impl<T: Shared> Share<T> {
    /// Shares `value`: starts its coordinator in this process. In debug builds, first checks
    /// that `T` reads back as written ([`Error::Encoding`]), since every `get` and `set`
    /// carries it.
    pub fn new(value: T) -> Result<Self, Error> {
        crate::round_trip::check_value(&value)?;
        let coordinator = Coordinator::start_new(value)?;
        let endpoint = coordinator.endpoint().clone();
        let client = client::for_endpoint(&endpoint);
        // Connect while the coordinator runs: the handshake would wait for a `start()` that
        // this process could not call if its first use came while stopped.
        client.connect()?;
        let link = Link::new(
            client,
            Some(coordinator.running_flag()),
            Some(coordinator.held_writes()),
        );
        Ok(Self::with_place(
            link,
            Place::Local(endpoint),
            Some(coordinator),
        ))
    }

    /// A handle over `link` to the value at `place`; `owner` only in the creating process.
    pub(crate) fn with_place(link: Link, place: Place, owner: Option<Arc<dyn Control>>) -> Self {
        Self {
            proxy: T::proxy(&link),
            link,
            place,
            owner,
        }
    }

    /// A handle in another process (or a deserialized one), connecting on first use.
    fn from_place(place: Place) -> Self {
        let link = match &place {
            Place::Local(endpoint) => Link::new(client::for_endpoint(endpoint), None, None),
            #[cfg(feature = "cluster")]
            Place::Cluster(remote) => crate::cluster::share::links::link_to::<T>(remote),
        };
        Self::with_place(link, place, None)
    }

    /// A copy of the whole value, after every write that returned before this call. Waits
    /// as long as it takes, or for this handle's [limit](Share::with_timeout).
    pub fn get(&self) -> Result<T, Error> {
        self.link.call(Target::Whole(WholeOp::Get), &())
    }

    /// Like [`get`](Share::get), waiting at most `limit` (`Duration::MAX`: no limit) whatever
    /// this handle's own limit; [`Error::Timeout`] when no answer came by then (see
    /// [`with_timeout`](Share::with_timeout) for what such a timeout leaves behind).
    pub fn get_timeout(&self, limit: Duration) -> Result<T, Error> {
        let limit = Some(limit).filter(|limit| *limit != Duration::MAX);
        self.link
            .call_within(Target::Whole(WholeOp::Get), &(), limit)
    }

    /// A handle to the same share, over the same connection of this process, whose every
    /// call — [`get`](Share::get), every field call (`share.counter.get()`,
    /// `share.list.len()`, …), every `#[shared]` method call — gives up after `limit` with
    /// [`Error::Timeout`] ([`Timed::Share`](crate::error::Timed::Share)), and whose writes
    /// wait for room in this process's write ring at most that long. `Duration::MAX` means
    /// no limit (as the handle from [`new`](Share::new) has). Clones keep the limit, and so
    /// does a copy sent to another process.
    ///
    /// What a timeout leaves behind:
    /// - The share stays usable: the timed-out call's connection is dropped and the next
    ///   call connects again, so its late reply is never read as another call's answer.
    /// - Nothing written before is lost: writes that returned before the call are applied
    ///   (the coordinator drains the dropped connection's ring).
    /// - The timed-out operation itself may or may not be applied (it may already wait at
    ///   the coordinator), and, if it is, possibly after operations this process makes
    ///   after the timeout — as with a timeout anywhere. Make such calls idempotent when
    ///   that matters.
    /// - A write that found no room in the ring in time is dropped, as are this process's
    ///   writes to the share after it until its next call, which reports it with
    ///   [`Error::Timeout`] (as a write lost to a gone coordinator is reported with
    ///   [`Error::Gone`]).
    ///
    /// In the creating process a call on a paused share fails at once with
    /// [`Error::SharePaused`], limit or not. A share on a cluster's Redis server (feature
    /// `cluster`) does not apply a limit shorter than its per-command timeout of 5 s: every
    /// Redis command is bounded by that instead.
    pub fn with_timeout(&self, limit: Duration) -> Share<T> {
        Self::with_place(
            self.link.with_limit(limit),
            self.place.clone(),
            self.owner.clone(),
        )
    }

    /// Replaces the whole value (a fire-and-forget write, ordered like any other).
    pub fn set(&self, value: T) {
        self.link.write(Target::Whole(WholeOp::Set), &value)
    }

    /// Resets the value to `T::default()` (a write, ordered like any other).
    pub fn clear(&self)
    where
        T: Default,
    {
        self.set(T::default())
    }

    /// Pauses the coordinator after applying every write it has received — every write whose
    /// call returned before `pause` was called, from any process. Writes made while paused
    /// wait in their connections and are applied after [`resume`](Share::resume); calls made
    /// while paused fail with [`Error::SharePaused`] in this process, and wait in other
    /// processes. Only the creating process can pause a share
    /// ([`Usage::NotShareOwner`](crate::error::Usage::NotShareOwner) elsewhere).
    pub fn pause(&self) -> Result<(), Error> {
        self.owner()?.stop()
    }

    /// Resumes the coordinator after [`pause`](Share::pause); does nothing when it runs.
    /// Only the creating process can resume a share.
    pub fn resume(&self) -> Result<(), Error> {
        self.owner()?.start()
    }

    /// Whether the coordinator is paused. In a process other than the creator, always
    /// `false`: a child cannot see a pause (its calls wait until the share runs again).
    pub fn is_paused(&self) -> bool {
        self.owner.as_ref().is_some_and(|owner| !owner.is_running())
    }

    /// The last failure the coordinator recorded — a user method that panicked, an operation
    /// that failed — whichever process caused it; `None` when there was none. While stopped
    /// (in the creating process) it is read without waiting.
    pub fn last_error(&self) -> Result<Option<String>, Error> {
        match &self.owner {
            Some(owner) if !owner.is_running() => Ok(owner.recorded_error()),
            _ => self.link.call(Target::Whole(WholeOp::LastError), &()),
        }
    }

    /// The coordinator's endpoint, for the runtime's own tests.
    #[cfg(test)]
    pub(crate) fn endpoint(&self) -> Endpoint {
        match &self.place {
            Place::Local(endpoint) => endpoint.clone(),
            #[cfg(feature = "cluster")]
            Place::Cluster(_) => panic!("a share on a cluster has no endpoint"),
        }
    }

    /// The link the proxy uses, for hand-written proxies.
    #[doc(hidden)]
    pub fn link(&self) -> &Link {
        &self.link
    }

    fn owner(&self) -> Result<&Arc<dyn Control>, Error> {
        self.owner
            .as_ref()
            .ok_or(Error::Usage(crate::error::Usage::NotShareOwner))
    }
}

impl<T: Shared> Clone for Share<T> {
    fn clone(&self) -> Self {
        Self {
            proxy: T::proxy(&self.link),
            link: self.link.clone(),
            place: self.place.clone(),
            owner: self.owner.clone(),
        }
    }
}

impl<T: Shared> Deref for Share<T> {
    type Target = T::Proxy;

    fn deref(&self) -> &T::Proxy {
        &self.proxy
    }
}

/// `share.counter += 1` takes the field mutably; the proxy holds no state of its own, so this
/// is the same as `Deref`.
impl<T: Shared> DerefMut for Share<T> {
    fn deref_mut(&mut self) -> &mut T::Proxy {
        &mut self.proxy
    }
}

impl<T: Shared> fmt::Debug for Share<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("type", &std::any::type_name::<T>())
            .field("place", &self.place)
            .field("paused", &self.is_paused())
            .finish()
    }
}

/// A handle travels as the coordinator's endpoint and its [limit](Share::with_timeout). A
/// handle to a paused share refuses to travel: a child could not reach it, and a copy that
/// forks off would lose its writes.
impl<T: Shared> Serialize for Share<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_paused() {
            let message = format!(
                "cannot send a handle to a paused `Share<{}>`: call `resume()` first",
                std::any::type_name::<T>()
            );
            crate::transport::frame::note_refusal(&message);
            return Err(serde::ser::Error::custom(message));
        }
        (&self.place, self.link.limit()).serialize(serializer)
    }
}

impl<'de, T: Shared> Deserialize<'de> for Share<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (place, limit) = <(Place, Option<Duration>)>::deserialize(deserializer)?;
        let share = Self::from_place(place);
        Ok(match limit {
            Some(limit) => share.with_timeout(limit),
            None => share,
        })
    }
}

/// Where a share's value lives: what a handle carries to another process.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum Place {
    /// A coordinator thread of the creating process, at this endpoint.
    Local(Endpoint),
    /// Keys of a cluster's Redis server.
    #[cfg(feature = "cluster")]
    Cluster(crate::cluster::share::remote::Remote),
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Local(endpoint) => write!(f, "{:?}", endpoint.address),
            #[cfg(feature = "cluster")]
            Place::Cluster(remote) => write!(f, "{remote:?}"),
        }
    }
}
