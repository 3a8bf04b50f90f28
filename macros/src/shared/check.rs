//! The rules a `#[shared]` struct and `impl` block must follow, one function per rule.

use syn::spanned::Spanned;
use syn::{GenericParam, Ident, ItemImpl, ItemStruct, Receiver, ReceiverKind, Signature, Type};

/// A shared struct is not generic: the coordinator's dispatch and the proxy are concrete.
pub(crate) fn shared_struct(item: &ItemStruct, errors: &mut Vec<syn::Error>) {
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "`#[shared]` does not support generic structs; share a concrete type",
        ));
    }
}

/// The block is the type's own, not a trait impl, and not generic.
pub(crate) fn impl_block(item: &ItemImpl, errors: &mut Vec<syn::Error>) {
    if let Some((path, _)) = &item.trait_ {
        errors.push(syn::Error::new(
            path.span(),
            "`#[shared]` goes on the type's own `impl` block, not on a trait implementation",
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "`#[shared]` does not support generic `impl` blocks",
        ));
    }
}

/// The block is for a named type, whose name gives the proxy's.
pub(crate) fn impl_type_ident<'a>(
    item: &'a ItemImpl,
    errors: &mut Vec<syn::Error>,
) -> Option<&'a Ident> {
    match item.self_ty.as_ref() {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().map(|s| &s.ident),
        other => {
            errors.push(syn::Error::new(
                other.span(),
                "`#[shared]` needs an `impl` block for a named struct",
            ));
            None
        }
    }
}

/// A method runs on the coordinator: it borrows the value (`&self` or `&mut self`), is not
/// generic (its arguments travel as concrete types) and not `async`. Returns whether it passed.
pub(crate) fn method(sig: &Signature, receiver: &Receiver, errors: &mut Vec<syn::Error>) -> bool {
    let before = errors.len();
    if !matches!(receiver.kind, ReceiverKind::Reference(..)) {
        errors.push(syn::Error::new(
            receiver.self_token.span(),
            "a `#[shared]` method must take `&self` or `&mut self`; `self` by value would move the shared value out of its coordinator",
        ));
    }
    let generic = sig
        .generics
        .params
        .iter()
        .find(|param| !matches!(param, GenericParam::Lifetime(_)));
    if let Some(param) = generic {
        errors.push(syn::Error::new(
            param.span(),
            "a `#[shared]` method cannot be generic: its arguments travel to the coordinator, which needs concrete types",
        ));
    }
    if let Some(asyncness) = sig.asyncness {
        errors.push(syn::Error::new(
            asyncness.span(),
            "a `#[shared]` method cannot be `async`: it runs on the coordinator's thread",
        ));
    }
    errors.len() == before
}

/// A return value travels back: `impl Trait` cannot.
pub(crate) fn return_type(ty: &Type, errors: &mut Vec<syn::Error>) -> bool {
    if matches!(ty, Type::ImplTrait(_)) {
        errors.push(syn::Error::new(
            ty.span(),
            "a `#[shared]` method cannot return `impl Trait`: its return value travels back to the caller, so it must be a concrete serializable type",
        ));
        return false;
    }
    true
}
