//! Attribute macros of [skprocess](https://docs.rs/skprocess). Use them through the
//! `skprocess` crate, which re-exports them; generated code only names `::skprocess::__private`
//! (or `<path>::__private` with the `crate = path` option) and `::core`, and calls trait items by
//! their full path, so it compiles under `#![no_implicit_prelude]`.

#![deny(missing_docs)]

mod autoreconnect;
mod duration;
mod errors;
mod krate;
mod main_attr;
mod shared;
mod skprocess;

use proc_macro::TokenStream;

/// Runs the hooks of an `impl` block in a child process.
///
/// ```ignore
/// use skprocess::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Doubler { value: u64 }
///
/// #[skprocess(runs = 3, lives = 2, timeout(run = "500ms"))]
/// impl Doubler {
///     fn run(&mut self) { self.value *= 2; }
///     fn result(&mut self) -> u64 { self.value }
/// }
/// ```
///
/// # Options
///
/// | option | type | default | meaning |
/// |---|---|---|---|
/// | `runs` | integer or `None` | `Some(1)` | iterations before finishing; `None` runs until stopped |
/// | `lives` | integer ≥ 1 | `1` | attempts for the whole process; crashes and timeouts cost one too |
/// | `join_in` | duration string | none | wall-clock budget, checked between iterations |
/// | `timeout(hook = "…", …)` | duration strings | none | per-hook limits for `prerun`, `run`, `postrun`, `onfinish`, `result`, `error` |
/// | `inbox` | type | `NoMessages` | what the parent `tell`s and hooks `listen` for |
/// | `outbox` | type | `NoMessages` | what hooks `tell` and the parent `listen`s for |
/// | `crate` | path | `::skprocess` | where generated code finds skprocess, for crates that re-export it: `crate = my_framework::skprocess` |
///
/// Durations are string literals such as `"250ms"`, `"1.5s"`, `"2m"`, `"1h"` or `"1500us"`
/// (`µs` is accepted for `us`). They are read exactly, without floating point: a duration below
/// `1ms` (the precision of timeouts and `join_in`) or above `u64::MAX` nanoseconds (about 584
/// years) is a compile error.
/// Every option can be overridden per instance with `Config` before `start_with`.
///
/// # Hooks
///
/// Methods named `prerun`, `run` (required), `postrun`, `onfinish`, `result` and `error` are
/// hooks; every other method is an ordinary helper and keeps working in the child.
///
/// - `prerun`, `run`, `postrun`, `onfinish`: `fn(&mut self)` or
///   `fn(&mut self, ctx: &mut Ctx<Self>)`, returning `()` or `Result<(), E>` with `E: Display`.
/// - `result`: same parameters, returning the output `T` (serializable) or `Result<T, E>`.
/// - `error`: `fn(&mut self, error: &Error)` (optionally with `ctx` before `error`), returning
///   the output type or `Result<T, E>`; it turns the final error into the output, and when it
///   fails the original error is delivered.
///
/// # The same without the macro
///
/// ```ignore
/// impl skprocess::Process for Doubler {
///     type Output = u64;
///     type Inbox = skprocess::process::NoMessages;
///     type Outbox = skprocess::process::NoMessages;
///     const KEY: &'static str = concat!(module_path!(), "::Doubler");
///     fn default_config() -> skprocess::Config {
///         skprocess::Config::default().runs(3).lives(2)
///             .timeout(skprocess::Hook::Run, std::time::Duration::from_millis(500))
///     }
///     fn run(&mut self, _ctx: &mut skprocess::Ctx<Self>) -> skprocess::process::HookResult {
///         self.value *= 2;
///         Ok(())
///     }
///     fn result(&mut self, _ctx: &mut skprocess::Ctx<Self>) -> Result<u64, skprocess::process::HookFailure> {
///         Ok(self.value)
///     }
/// }
/// skprocess::register!(Doubler);
/// ```
#[proc_macro_attribute]
pub fn skprocess(attr: TokenStream, item: TokenStream) -> TokenStream {
    skprocess::expand(attr.into(), item.into()).into()
}

/// Marks `fn main` of a program that starts processes: inserts `skprocess::init()` as its
/// first statement, so that the re-executed binary becomes the child.
///
/// ```ignore
/// #[skprocess::main]
/// fn main() -> Result<(), skprocess::Error> {
///     // start processes here
///     Ok(())
/// }
/// ```
///
/// # Options
///
/// `crate = path` names the skprocess crate when it is reached through a re-export, as in
/// `#[my_framework::skprocess::main(crate = my_framework::skprocess)]`; the inserted statement is
/// then `my_framework::skprocess::init();`. There are no other options.
///
/// # The same without the macro
///
/// Call `skprocess::init()` first thing in `main`.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(attr.into(), item.into()).into()
}

/// Makes a struct shareable across processes with [`Share`](../skprocess/struct.Share.html),
/// and runs the methods of its `impl` block on the share's coordinator.
///
/// ```ignore
/// use skprocess::prelude::*;
///
/// #[shared]
/// #[derive(Default, Serialize, Deserialize)]
/// struct Stats { counter: u64, results: Vec<u64> }
///
/// #[shared]
/// impl Stats {
///     fn record(&mut self, r: u64) { self.results.push(r); self.counter += 1; }
///     fn total(&self) -> u64 { self.counter }
/// }
///
/// let mut share = Share::new(Stats::default())?;
/// share.counter += 1;          // a field operation: one write on the coordinator
/// share.results.push(4);       // likewise
/// share.record(5);             // `&mut self` returning `()`: fire-and-forget
/// assert_eq!(share.total()?, 2); // returns a value: waits for it
/// ```
///
/// # On a struct
///
/// The struct must have named fields and no generics, and every field's type must implement
/// `SharedField` (numbers, `bool`, `String`, `Option`, std collections, `Sktimer`, `Circuit`,
/// `BreakingCircuit`; an empty `impl SharedField for MyType {}` gives `get`/`set`). Generated:
/// a proxy struct `<Name>Shared` with one `Field<T>` per field (same names and visibility) —
/// what `Share<Name>` dereferences to — and `impl Shared for Name`.
///
/// # On its `impl` block
///
/// Every method taking `&self` or `&mut self` gets a proxy method of the same name and
/// arguments on `<Name>Shared`: a `&mut self` method returning `()` is a fire-and-forget
/// write; every other method waits and returns `Result<T, skprocess::Error>`. Arguments and
/// return values must be `Serialize + DeserializeOwned`; methods cannot be generic, `async`,
/// or take `self` by value. Methods without a receiver stay local. The block also gets
/// `pub const SHARED_META: SharedMeta`: per method, the fields it reads and writes, found in
/// its body at compile time (in-place changes such as `self.items.push(x)` are writes; a body
/// that uses `self` as a whole reads and writes `"*"`).
///
/// # Options
///
/// `crate = path` names the skprocess crate when it is reached through a re-export.
///
/// # The same without the macro
///
/// Implement `skprocess::Shared` for the struct: a proxy struct of `Field::new(link, index)`
/// per field, `apply_field` dispatching by index to `SharedField::apply`, and `apply_method`
/// decoding each method's argument tuple with `decode_args`, calling it, and encoding its
/// result with `encode_reply`; proxy methods call `Link::write` or `Link::call` with
/// `Target::Method(index)`.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    shared::expand(attr.into(), item.into()).into()
}

/// Reopens a process struct's `Live<T>` fields in the child, before the first hook of every
/// start (the first, each restart after a crash), with secrets from environment variables.
///
/// ```ignore
/// use skprocess::prelude::*;
/// use skprocess::reconnect::Live;
///
/// #[autoreconnect(postgres(orders = "ORDERS_PASSWORD", "*" = "PGPASSWORD"))]
/// #[derive(Serialize, Deserialize)]
/// struct Worker {
///     orders: Live<postgres::Client>,   // secret from ORDERS_PASSWORD
///     audit: Live<postgres::Client>,    // secret from PGPASSWORD
///     cache: Live<rusqlite::Connection>, // no secret
/// }
/// ```
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `kind(field = "VARIABLE", "*" = "VARIABLE", …)` | the environment variable that holds the secret of each field of resource kind `kind` (`postgres`, `redis`, `sqlite`, `tcp`, `unix`, `file`, or a custom `Reconnect::KIND`); a field's own entry wins over `"*"` |
/// | `crate = path` | where generated code finds skprocess (default `::skprocess`) |
///
/// Secrets are resolved per resource kind, then field name, then `"*"`; a field with no
/// entry opens without a secret. Only the variable's *name* is compiled in; the value is read
/// in the child, which inherits the parent's environment or gets it from
/// `Config::secret_env` at spawn. A kind or field that matches no `Live` field is a compile
/// error.
///
/// A reopen failure fails that start with `Error::Reopen`, costing a life (the start is
/// tried again while lives remain).
///
/// # The same without the macro
///
/// ```ignore
/// impl skprocess::reconnect::AutoReconnect for Worker {
///     fn reopen_live(&mut self) -> Result<(), skprocess::reconnect::ReopenError> {
///         skprocess::reconnect::reopen_field(&mut self.orders, "orders", Some("ORDERS_PASSWORD"))?;
///         skprocess::reconnect::reopen_field(&mut self.audit, "audit", Some("PGPASSWORD"))?;
///         skprocess::reconnect::reopen_field(&mut self.cache, "cache", None)
///     }
/// }
/// ```
/// (`#[skprocess]` calls `AutoReconnect::reopen_live` from `Process::reopen_live` whenever the
/// type implements it; a hand-written `Process` implements `reopen_live` itself.)
#[proc_macro_attribute]
pub fn autoreconnect(attr: TokenStream, item: TokenStream) -> TokenStream {
    autoreconnect::expand(attr.into(), item.into()).into()
}
