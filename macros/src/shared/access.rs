//! Which fields a method body reads and writes, found at compile time.
//!
//! Rules (stricter than suitkaise's analyser, which missed in-place changes, BUG-21):
//! - `self.f = v` writes `f`; `self.f += v` (and every compound assignment) reads and writes
//!   `f`; an assignment through an index or a deeper field (`self.f[i] = v`, `self.f.x = v`)
//!   reads and writes `f`.
//! - `&mut self.f` (and `&mut self.f[i]`, …) reads and writes `f`.
//! - A method call on a field (`self.items.push(x)`, `self.map.entry(k).or_insert(0)`) reads
//!   `f`, and writes it too unless the method is a known read-only one (`len`, `get`, `iter`,
//!   `contains`, `clone`, …).
//! - `self.other(..)` takes `other`'s sets when `other` is in the same `impl` (resolved to a
//!   fixed point); any other use of `self` as a whole (passed to a function, a trait method,
//!   returned) reads and writes the whole value.
//! - Inside macros, where the syntax is not parsed, every `self.f` reads `f` and, outside the
//!   formatting and logging macros, writes it too; a bare `self` is the whole value.
//!
//! In a `&self` method, writes are dropped: it cannot change the value.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{BinOp, Expr, ExprField, Member};

/// Methods that never change the value they are called on.
const READ_ONLY_METHODS: &[&str] = &[
    "len",
    "is_empty",
    "get",
    "contains",
    "contains_key",
    "iter",
    "first",
    "last",
    "clone",
    "keys",
    "values",
    "to_string",
    "to_owned",
    "as_str",
    "as_slice",
    "as_ref",
    "starts_with",
    "ends_with",
    "copied",
    "cloned",
    "is_some",
    "is_none",
    "is_ok",
    "is_err",
    "eq",
    "ne",
    "cmp",
    "partial_cmp",
    "min",
    "max",
    "abs",
    "pow",
    "checked_add",
    "checked_sub",
    "checked_mul",
    "saturating_add",
    "saturating_sub",
    "wrapping_add",
    "wrapping_sub",
    "count",
    "sum",
    "to_vec",
    "binary_search",
    "capacity",
    "chars",
    "bytes",
    "lines",
    "split",
    "trim",
    "num_times",
    "mean",
    "median",
    "percentile",
    "total_trips",
    "times_shorted",
    "broken",
    "range",
    "windows",
    "chunks",
    "front",
    "back",
];

/// Macros that only read their arguments.
const READING_MACROS: &[&str] = &[
    "println",
    "print",
    "eprintln",
    "eprint",
    "format",
    "format_args",
    "write",
    "writeln",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "info",
    "debug",
    "warn",
    "error",
    "trace",
    "event",
    "unreachable",
    "todo",
    "dbg",
];

/// What one method body touches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) reads: BTreeSet<String>,
    pub(crate) writes: BTreeSet<String>,
    /// `self` used as a whole: reads and writes everything.
    pub(crate) whole: bool,
    /// Methods called on `self` directly, resolved against the `impl` later.
    pub(crate) calls: BTreeSet<String>,
}

impl Access {
    /// Analyses a method body.
    pub(crate) fn of_block(block: &syn::Block) -> Self {
        let mut visitor = Visitor::default();
        visitor.visit_block(block);
        visitor.access
    }

    /// Takes in a callee's sets.
    pub(crate) fn absorb(&mut self, other: &Access) -> bool {
        let before = (self.reads.len(), self.writes.len(), self.whole);
        self.reads.extend(other.reads.iter().cloned());
        self.writes.extend(other.writes.iter().cloned());
        self.whole |= other.whole;
        before != (self.reads.len(), self.writes.len(), self.whole)
    }
}

#[derive(Default)]
struct Visitor {
    access: Access,
}

/// The field at the root of a place or receiver expression (`self.f`, `self.f[i].g`,
/// `self.f.iter()`), if it is a field of `self`.
fn root_field(mut expr: &Expr) -> Option<String> {
    loop {
        match expr {
            Expr::Field(ExprField { base, member, .. }) if is_self(base) => {
                return Some(member_name(member));
            }
            Expr::Field(field) => expr = &field.base,
            Expr::Index(index) => expr = &index.expr,
            Expr::Paren(paren) => expr = &paren.expr,
            Expr::Reference(reference) => expr = &reference.expr,
            Expr::Unary(unary) => expr = &unary.expr,
            Expr::MethodCall(call) => expr = &call.receiver,
            _ => return None,
        }
    }
}

fn is_self(expr: &Expr) -> bool {
    matches!(expr, Expr::Path(path) if path.qself.is_none() && path.path.is_ident("self"))
}

fn member_name(member: &Member) -> String {
    match member {
        Member::Named(ident) => ident.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}

fn is_compound_assignment(op: &BinOp) -> bool {
    matches!(
        op,
        BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_)
    )
}

impl Visitor {
    fn write(&mut self, field: String) {
        self.access.reads.insert(field.clone());
        self.access.writes.insert(field);
    }
}

impl<'ast> Visit<'ast> for Visitor {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Assign(assign) => {
                match &*assign.left {
                    // A plain `self.f = v` writes without reading.
                    Expr::Field(field) if is_self(&field.base) => {
                        self.access.writes.insert(member_name(&field.member));
                    }
                    left => {
                        if let Some(field) = root_field(left) {
                            self.write(field);
                        }
                        self.visit_expr(left);
                    }
                }
                self.visit_expr(&assign.right);
            }
            Expr::Binary(binary) if is_compound_assignment(&binary.op) => {
                if let Some(field) = root_field(&binary.left) {
                    self.write(field);
                }
                visit::visit_expr_binary(self, binary);
            }
            Expr::Reference(reference) if reference.mutability.is_some() => {
                if let Some(field) = root_field(&reference.expr) {
                    self.write(field);
                }
                visit::visit_expr_reference(self, reference);
            }
            Expr::MethodCall(call) if is_self(&call.receiver) => {
                self.access.calls.insert(call.method.to_string());
                for arg in &call.args {
                    self.visit_expr(arg);
                }
            }
            Expr::MethodCall(call) => {
                let on_field = match &*call.receiver {
                    Expr::Field(field) if is_self(&field.base) => Some(field),
                    _ => None,
                };
                if let Some(field) = on_field {
                    let name = member_name(&field.member);
                    let method = call.method.to_string();
                    if READ_ONLY_METHODS.contains(&method.as_str()) {
                        self.access.reads.insert(name);
                    } else {
                        self.write(name);
                    }
                }
                visit::visit_expr_method_call(self, call);
            }
            Expr::Field(field) if is_self(&field.base) => {
                self.access.reads.insert(member_name(&field.member));
            }
            Expr::Path(_) if is_self(expr) => self.access.whole = true,
            Expr::Macro(mac) => self.visit_macro_tokens(&mac.mac),
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_stmt_macro(&mut self, mac: &'ast syn::StmtMacro) {
        self.visit_macro_tokens(&mac.mac);
    }
}

impl Visitor {
    fn visit_macro_tokens(&mut self, mac: &syn::Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let reads_only = READING_MACROS.contains(&name.as_str());
        self.scan_tokens(mac.tokens.clone(), reads_only);
    }

    /// Finds `self.f` and bare `self` in unparsed tokens.
    fn scan_tokens(&mut self, tokens: TokenStream, reads_only: bool) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(group) => self.scan_tokens(group.stream(), reads_only),
                TokenTree::Ident(ident) if ident == "self" => {
                    let dot =
                        matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '.');
                    let next = match trees.get(i + 2) {
                        Some(TokenTree::Ident(next)) if dot => Some(next.to_string()),
                        _ => None,
                    };
                    let called = matches!(trees.get(i + 3), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis);
                    match next {
                        Some(method) if called => {
                            self.access.calls.insert(method);
                        }
                        Some(field) if reads_only => {
                            self.access.reads.insert(field);
                        }
                        Some(field) => self.write(field),
                        None => self.access.whole = true,
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(body: TokenStream) -> Access {
        Access::of_block(&syn::parse2(body).unwrap())
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn in_place_changes_are_writes() {
        let found = access(quote::quote!({
            self.items.push(x);
            self.map.insert(k, v);
            self.count += 1;
            self.name = String::new();
            let n = self.items.len() + self.other;
            for x in &mut self.list {}
            self.grid[0] = 1;
            println!("{}", self.shown);
        }));
        assert_eq!(
            found.writes,
            set(&["count", "grid", "items", "list", "map", "name"])
        );
        assert_eq!(
            found.reads,
            set(&["count", "grid", "items", "list", "map", "other", "shown"])
        );
        assert!(!found.whole);
    }

    #[test]
    fn self_as_a_whole_and_calls() {
        let found = access(quote::quote!({
            helper(self);
            self.bump();
        }));
        assert!(found.whole);
        assert_eq!(found.calls, set(&["bump"]));
    }
}
