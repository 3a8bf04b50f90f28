//! [`Maps`]: the builder behind every map call, and what can be mapped.
//!
//! `pool.map(f, items)` is `Maps` with no modifier; each modifier returns a new `Maps`:
//! `star()` spreads tuple items into arguments, `timeout(d)` limits each item, and
//! `background()` or `asynced()` (never both) run the map on a thread of its own and return a
//! [`Job`] or a [`MapFuture`]. They compose in any order: `pool.star().timeout(d).asynced()`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::message::Message;
use crate::pool::function::{self, Mode, Plain, Star};
use crate::pool::job::{Canceller, Completion, Imap, Job, JobRun, JobSpec, MapFuture};
use crate::pool::scheduler::Task;
use crate::pool::{Pool, PoolCore};
use crate::process::Process;
use crate::transport::frame;

/// Delivery of a [`Maps`]: the call returns the outcome (or a lazy iterator).
#[derive(Debug, Clone, Copy)]
pub struct Now;
/// Delivery of a [`Maps`]: the call returns a [`Job`].
#[derive(Debug, Clone, Copy)]
pub struct Background;
/// Delivery of a [`Maps`]: the call returns a [`MapFuture`].
#[derive(Debug, Clone, Copy)]
pub struct Asynced;

mod sealed {
    pub trait Deferred {}
    impl Deferred for super::Background {}
    impl Deferred for super::Asynced {}
}

/// A map call being built: start from [`Pool::star`], [`Pool::timeout`],
/// [`Pool::background`] or [`Pool::asynced`], or call the maps on [`Pool`] directly.
#[must_use = "a `Maps` does nothing until one of its map methods is called"]
pub struct Maps<'p, M = Plain, D = Now> {
    pool: &'p Pool,
    timeout: Option<Duration>,
    progress: bool,
    _mode: PhantomData<(M, D)>,
}

impl<M, D> Clone for Maps<'_, M, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, D> Copy for Maps<'_, M, D> {}

impl<M, D> std::fmt::Debug for Maps<'_, M, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<'p, M, D> Maps<'p, M, D> {
    fn with<M2, D2>(self) -> Maps<'p, M2, D2> {
        Maps {
            pool: self.pool,
            timeout: self.timeout,
            progress: self.progress,
            _mode: PhantomData,
        }
    }

    /// Each item is a tuple whose fields are the function's arguments: `star().map(add as
    /// fn(u64, u64) -> u64, [(1, 2), (3, 4)])` calls `add(1, 2)` and `add(3, 4)`. The arity
    /// is checked at compile time. A `fn` item needs the cast to a `fn` pointer (its arity is
    /// only known from the items, which rustc reads after the function); a closure such as
    /// `|a: u64, b: u64| a + b` needs none (see [`Mode`]).
    pub fn star(self) -> Maps<'p, Star, D> {
        self.with()
    }

    /// Limits each item to `limit`, counted from when it starts in a worker: a late item fails
    /// with [`Error::ItemTimeout`], its worker is killed and replaced, and the other items go
    /// on. The same meaning for all four maps.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Draws a progress bar of the map's items on stderr when it is a terminal (an `indicatif`
    /// bar; the `progress` feature).
    #[cfg(feature = "progress")]
    pub fn progress(mut self) -> Self {
        self.progress = true;
        self
    }

    fn spec<T, R>(&self, task: Task, lives: u32, ordered: bool) -> JobSpec<R>
    where
        T: Message,
        R: Message,
    {
        JobSpec {
            task,
            lives,
            timeout: self.timeout,
            decode: frame::decode_owned::<R>,
            check: crate::round_trip::check_encoded::<T>,
            ordered,
            progress: self.progress,
        }
    }

    /// A job over `items`, or `None` when the pool is closed.
    fn run<I, R>(&self, spec: JobSpec<R>, items: I) -> Option<JobRun<I::IntoIter, R>>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let core: &Arc<PoolCore> = &self.pool.core;
        JobRun::new(Arc::clone(core), spec, items.into_iter())
    }
}

fn function_task<M, T, R>(f: M::Function) -> Task
where
    M: Mode<T, R>,
    T: Message,
    R: Message,
{
    Task::Function {
        offset: function::offsets::<M, T, R>(f),
    }
}

fn process_task<P: Process>() -> (Task, u32) {
    (Task::Process { key: P::KEY }, P::default_config().lives)
}

impl<'p, M> Maps<'p, M, Now> {
    /// Runs the map on a thread of its own and returns a [`Job`] at once.
    pub fn background(self) -> Maps<'p, M, Background> {
        self.with()
    }

    /// Returns a [`MapFuture`] instead of blocking: await it on any executor.
    pub fn asynced(self) -> Maps<'p, M, Asynced> {
        self.with()
    }

    /// Maps `f` over `items`; the outputs in input order. When items fail, the error of the
    /// first failing one in input order, once all finished ([`Error::Item`] names its index).
    pub fn map<T, R, I>(&self, f: M::Function, items: I) -> Result<Vec<R>, Error>
    where
        M: Mode<T, R>,
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        let spec = self.spec::<T, R>(function_task::<M, T, R>(f), 1, true);
        self.run(spec, items).ok_or(Error::PoolClosed)?.collect()
    }

    /// Like [`map`](Maps::map), with the outputs in completion order; returns at the first
    /// failure to complete, cancelling the items not started.
    pub fn unordered_map<T, R, I>(&self, f: M::Function, items: I) -> Result<Vec<R>, Error>
    where
        M: Mode<T, R>,
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        let spec = self.spec::<T, R>(function_task::<M, T, R>(f), 1, false);
        self.run(spec, items)
            .ok_or(Error::PoolClosed)?
            .collect_unordered()
    }

    /// A lazy iterator of each item's outcome, in input order: it pulls `items` as workers
    /// free up, with a bounded number in flight.
    pub fn imap<T, R, I>(&self, f: M::Function, items: I) -> Imap<'p, I::IntoIter, R>
    where
        M: Mode<T, R>,
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        Imap::new(self.run(
            self.spec::<T, R>(function_task::<M, T, R>(f), 1, true),
            items,
        ))
    }

    /// Like [`imap`](Maps::imap), in completion order.
    pub fn unordered_imap<T, R, I>(&self, f: M::Function, items: I) -> Imap<'p, I::IntoIter, R>
    where
        M: Mode<T, R>,
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        Imap::new(self.run(
            self.spec::<T, R>(function_task::<M, T, R>(f), 1, false),
            items,
        ))
    }
}

impl<'p> Maps<'p, Plain, Now> {
    /// Runs each `#[skprocess]` state's whole lifecycle in a worker (runs, lives, hook
    /// timeouts, the `error` hook, with the type's default configuration); the outputs of
    /// `result`, in input order. `tell` and `listen` fail with [`Error::NoParentLink`] there.
    /// A crash of the worker costs the item a life.
    pub fn map_processes<P, I>(&self, items: I) -> Result<Vec<P::Output>, Error>
    where
        I: IntoIterator<Item = P>,
        P: Process,
    {
        let (task, lives) = process_task::<P>();
        self.run(self.spec::<P, P::Output>(task, lives, true), items)
            .ok_or(Error::PoolClosed)?
            .collect()
    }

    /// Like [`map_processes`](Maps::map_processes), as a lazy iterator in input order.
    pub fn imap_processes<P, I>(&self, items: I) -> Imap<'p, I::IntoIter, P::Output>
    where
        I: IntoIterator<Item = P>,
        P: Process,
    {
        let (task, lives) = process_task::<P>();
        Imap::new(self.run(self.spec::<P, P::Output>(task, lives, true), items))
    }
}

/// How a deferred map ([`Background`] or [`Asynced`]) hands over its outcome `Result<Vec<R>,
/// Error>`.
pub trait Deliver<R: Send + 'static>: sealed::Deferred {
    /// What the map call returns: a [`Job`] or a [`MapFuture`].
    type Handle;
    #[doc(hidden)]
    fn deliver(work: Box<dyn FnOnce() -> Outcome<R> + Send>, cancel: Canceller) -> Self::Handle;
}

fn spawn_completion<R: Send + 'static>(
    work: Box<dyn FnOnce() -> Outcome<R> + Send>,
) -> Arc<Completion<Outcome<R>>> {
    let completion = Completion::new();
    let target = Arc::clone(&completion);
    let body = move || target.complete(work());
    let spawned = std::thread::Builder::new()
        .name("skprocess-pool-map".into())
        .spawn(body);
    if let Err(e) = spawned {
        // Without a thread the work cannot run: the handle reports why at once.
        completion.fail(Error::Io(e));
    }
    completion
}

impl<R: Send + 'static> Deliver<R> for Background {
    type Handle = Job<Outcome<R>>;
    fn deliver(work: Box<dyn FnOnce() -> Outcome<R> + Send>, _cancel: Canceller) -> Self::Handle {
        Job::new(spawn_completion(work))
    }
}

impl<R: Send + 'static> Deliver<R> for Asynced {
    type Handle = MapFuture<Outcome<R>>;
    fn deliver(work: Box<dyn FnOnce() -> Outcome<R> + Send>, cancel: Canceller) -> Self::Handle {
        MapFuture::new(spawn_completion(work), cancel)
    }
}

/// What a map returns.
pub(crate) type Outcome<R> = Result<Vec<R>, Error>;

impl<M, D> Maps<'_, M, D>
where
    D: sealed::Deferred,
{
    fn defer<I, R>(&self, spec: JobSpec<R>, items: I, ordered: bool) -> D::Handle
    where
        D: Deliver<R>,
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Serialize,
        R: Message,
    {
        let run = self.run(spec, items);
        let cancel = Canceller(run.as_ref().map(JobRun::canceller));
        let work = move || match run {
            None => Err(Error::PoolClosed),
            Some(run) if ordered => run.collect(),
            Some(run) => run.collect_unordered(),
        };
        D::deliver(Box::new(work), cancel)
    }

    /// [`Maps::map`], deferred.
    pub fn map<T, R, I>(&self, f: M::Function, items: I) -> D::Handle
    where
        M: Mode<T, R>,
        D: Deliver<R>,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Message,
        R: Message,
    {
        let spec = self.spec::<T, R>(function_task::<M, T, R>(f), 1, true);
        self.defer(spec, items, true)
    }

    /// [`Maps::unordered_map`], deferred.
    pub fn unordered_map<T, R, I>(&self, f: M::Function, items: I) -> D::Handle
    where
        M: Mode<T, R>,
        D: Deliver<R>,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Message,
        R: Message,
    {
        let spec = self.spec::<T, R>(function_task::<M, T, R>(f), 1, false);
        self.defer(spec, items, false)
    }

    /// [`Maps::imap`], deferred: the outcomes collected into a list in input order.
    pub fn imap<T, R, I>(&self, f: M::Function, items: I) -> D::Handle
    where
        M: Mode<T, R>,
        D: Deliver<R>,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Message,
        R: Message,
    {
        self.map(f, items)
    }

    /// [`Maps::unordered_imap`], deferred: the outcomes collected in completion order.
    pub fn unordered_imap<T, R, I>(&self, f: M::Function, items: I) -> D::Handle
    where
        M: Mode<T, R>,
        D: Deliver<R>,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Message,
        R: Message,
    {
        self.unordered_map(f, items)
    }

    /// [`Maps::map_processes`], deferred.
    pub fn map_processes<P, I>(&self, items: I) -> D::Handle
    where
        D: Deliver<P::Output>,
        I: IntoIterator<Item = P>,
        I::IntoIter: Send + 'static,
        P: Process,
    {
        let (task, lives) = process_task::<P>();
        self.defer(self.spec::<P, P::Output>(task, lives, true), items, true)
    }
}

impl Pool {
    fn maps(&self) -> Maps<'_> {
        Maps {
            pool: self,
            timeout: None,
            progress: false,
            _mode: PhantomData,
        }
    }

    /// Maps over tuple items spread into arguments; see [`Maps::star`].
    pub fn star(&self) -> Maps<'_, Star> {
        self.maps().star()
    }

    /// Maps with a progress bar on a terminal; see [`Maps::progress`] (the `progress`
    /// feature).
    #[cfg(feature = "progress")]
    pub fn progress(&self) -> Maps<'_> {
        self.maps().progress()
    }

    /// Maps with a per-item time limit; see [`Maps::timeout`].
    pub fn timeout(&self, limit: Duration) -> Maps<'_> {
        self.maps().timeout(limit)
    }

    /// Maps on a thread of their own, returning a [`Job`]; see [`Maps::background`].
    pub fn background(&self) -> Maps<'_, Plain, Background> {
        self.maps().background()
    }

    /// Maps as futures; see [`Maps::asynced`].
    pub fn asynced(&self) -> Maps<'_, Plain, Asynced> {
        self.maps().asynced()
    }

    /// Maps `f` over `items`, outputs in input order; see [`Maps::map`].
    pub fn map<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<Vec<R>, Error>
    where
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        self.maps().map(f, items)
    }

    /// Maps `f` over `items`, outputs in completion order; see [`Maps::unordered_map`].
    pub fn unordered_map<T, R, I>(&self, f: fn(T) -> R, items: I) -> Result<Vec<R>, Error>
    where
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        self.maps().unordered_map(f, items)
    }

    /// A lazy iterator of outcomes in input order; see [`Maps::imap`].
    pub fn imap<T, R, I>(&self, f: fn(T) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        self.maps().imap(f, items)
    }

    /// A lazy iterator of outcomes in completion order; see [`Maps::unordered_imap`].
    pub fn unordered_imap<T, R, I>(&self, f: fn(T) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: IntoIterator<Item = T>,
        T: Message,
        R: Message,
    {
        self.maps().unordered_imap(f, items)
    }

    /// Runs each `#[skprocess]` state's lifecycle in a worker; see [`Maps::map_processes`].
    pub fn map_processes<P, I>(&self, items: I) -> Result<Vec<P::Output>, Error>
    where
        I: IntoIterator<Item = P>,
        P: Process,
    {
        self.maps().map_processes(items)
    }

    /// The lazy form of [`map_processes`](Pool::map_processes); see
    /// [`Maps::imap_processes`].
    pub fn imap_processes<P, I>(&self, items: I) -> Imap<'_, I::IntoIter, P::Output>
    where
        I: IntoIterator<Item = P>,
        P: Process,
    {
        self.maps().imap_processes(items)
    }
}
