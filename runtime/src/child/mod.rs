//! The child side: everything that runs in a re-executed binary.
//!
//! - [`bootstrap`]: from `main` (or a test binary's hidden entry) to a connected child that
//!   knows its role, type and state.
//! - [`link`]: the child's end of the connection: the reader that drains it, the inbox, the
//!   credits for the child's own messages.
//! - [`engine`]: the lifecycle engine that runs the hooks, through [`hooks::Hooks`], which
//!   every [`Process`](crate::Process) implements (the trait itself sits above `child/`).
//! - [`hook_context`]: [`Ctx`](crate::Ctx), what hooks use.
//! - [`runtime_context`]: [`ChildContext`](crate::ChildContext), what any code in a child uses.
//! - [`watchdog`]: ends a hook that overran its limit.
//! - [`pool_item`]: what a process that runs as a pool item reports to its worker (its lives
//!   and overruns), so one lives budget holds across the workers it runs in.

pub(crate) mod bootstrap;
pub(crate) mod engine;
pub(crate) mod hook_context;
pub(crate) mod hooks;
pub(crate) mod link;
pub(crate) mod pool_item;
pub(crate) mod runtime_context;
pub(crate) mod watchdog;
