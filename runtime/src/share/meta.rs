//! The read/write metadata `#[shared]` computes at compile time (suitkaise's `_shared_meta`).
//!
//! For every method of a `#[shared] impl`, the fields it reads and the fields it writes, as
//! found in its body: `&mut self` methods are writes; assignments (`self.n += 1`), in-place
//! calls (`self.items.push(x)`, `self.map.insert(k, v)`), `&mut self.x` and indexing
//! assignments count as writes to that field; a method whose body hands `self` on whole (to a
//! function, or to a method that is not in the same `impl`) is taken to read and write the
//! whole value, [`WHOLE_VALUE`].
//!
//! Which calls wait is decided by the signature (a write returning `()` is fire-and-forget,
//! anything returning a value waits). The coordinator applies every operation in one order
//! and drains all connections before answering a read, which is at least as strong as waiting
//! for the writes to the fields a read reads; the sets are published for tools, tests, and
//! backends that order per field (a Redis backend).

/// The name that stands for the whole value in a read or write set.
pub const WHOLE_VALUE: &str = "*";

/// The metadata of a `#[shared]` type: the `SHARED_META` constant the attribute generates on
/// the `impl` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedMeta {
    /// The type's name.
    pub type_name: &'static str,
    /// Its fields, in order.
    pub fields: &'static [&'static str],
    /// Its methods, in order.
    pub methods: &'static [MethodMeta],
}

/// What one method reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodMeta {
    /// The method's name.
    pub name: &'static str,
    /// Fields it reads, sorted ([`WHOLE_VALUE`] when it could not be analysed).
    pub reads: &'static [&'static str],
    /// Fields it writes, sorted ([`WHOLE_VALUE`] when it could not be analysed); empty for
    /// `&self` methods.
    pub writes: &'static [&'static str],
    /// Whether it takes `&mut self`.
    pub is_write: bool,
    /// Whether a call waits for the coordinator's answer (it returns a value, or it is a
    /// read).
    pub waits: bool,
}

impl SharedMeta {
    /// Builds the metadata (used by generated code).
    #[doc(hidden)]
    pub const fn new(
        type_name: &'static str,
        fields: &'static [&'static str],
        methods: &'static [MethodMeta],
    ) -> Self {
        Self {
            type_name,
            fields,
            methods,
        }
    }

    /// The metadata of the method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodMeta> {
        self.methods.iter().find(|method| method.name == name)
    }
}

impl MethodMeta {
    /// Builds a method's metadata (used by generated code).
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        reads: &'static [&'static str],
        writes: &'static [&'static str],
        is_write: bool,
        waits: bool,
    ) -> Self {
        Self {
            name,
            reads,
            writes,
            is_write,
            waits,
        }
    }
}
