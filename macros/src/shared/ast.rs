//! The validated models of a `#[shared]` struct and `impl` block, keeping the user's syn
//! nodes for spans.

use std::collections::BTreeMap;

use syn::visit_mut::VisitMut;
use syn::{
    FnArg, Ident, ImplItem, ItemImpl, ItemStruct, Pat, ReceiverKind, ReturnType, Signature, Type,
    Visibility,
};

use super::access::Access;
use super::check;

/// A struct whose values can be shared.
pub(crate) struct SharedStruct<'a> {
    pub(crate) fields: Vec<FieldModel<'a>>,
}

/// One field: its proxy keeps the name and visibility.
pub(crate) struct FieldModel<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) ty: &'a Type,
}

impl<'a> SharedStruct<'a> {
    /// The model, or `None` when the struct cannot be shared (the errors say why).
    pub(crate) fn build(item: &'a ItemStruct, errors: &mut Vec<syn::Error>) -> Option<Self> {
        let syn::Fields::Named(named) = &item.fields else {
            errors.push(syn::Error::new(
                item.ident.span(),
                "`#[shared]` needs a struct with named fields; its proxy has one field per field",
            ));
            return None;
        };
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                Some(FieldModel {
                    ident: field.ident.as_ref()?,
                    vis: &field.vis,
                    ty: &field.ty,
                })
            })
            .collect();
        Some(Self { fields })
    }
}

/// An `impl` block whose methods run on the coordinator.
pub(crate) struct SharedImpl<'a> {
    /// The type the block is for.
    pub(crate) self_ty: &'a Type,
    /// Its last path segment, which names the proxy (`Tally` → `TallyShared`).
    pub(crate) type_ident: &'a Ident,
    pub(crate) methods: Vec<MethodModel<'a>>,
}

/// One method with a receiver.
pub(crate) struct MethodModel<'a> {
    pub(crate) sig: &'a Signature,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: &'a [syn::Attribute],
    /// `&mut self`.
    pub(crate) is_write: bool,
    /// Argument names (generated where the pattern is not a plain name) and types, with
    /// `Self` replaced by the type.
    pub(crate) args: Vec<(Ident, Type)>,
    /// The return type, `None` for `()`.
    pub(crate) output: Option<Type>,
    /// What the body reads and writes, with calls to other methods resolved.
    pub(crate) access: Access,
}

impl MethodModel<'_> {
    /// Whether a call waits for the coordinator (anything but a write returning `()`).
    pub(crate) fn waits(&self) -> bool {
        !self.is_write || self.output.is_some()
    }
}

impl<'a> SharedImpl<'a> {
    /// The model, or `None` when the block cannot be shared; every mistake is reported.
    pub(crate) fn build(item: &'a ItemImpl, errors: &mut Vec<syn::Error>) -> Option<Self> {
        check::impl_block(item, errors);
        let type_ident = check::impl_type_ident(item, errors)?;
        let mut methods = Vec::new();
        for entry in &item.items {
            let ImplItem::Fn(function) = entry else {
                continue;
            };
            let Some(receiver) = function.sig.receiver() else {
                continue; // associated functions stay local
            };
            let mut ok = check::method(&function.sig, receiver, errors);
            let args = arguments(&function.sig, item.self_ty.as_ref());
            let output = match &function.sig.output {
                ReturnType::Default => None,
                ReturnType::Type(_, ty) if is_unit(ty) => None,
                ReturnType::Type(_, ty) => {
                    ok &= check::return_type(ty, errors);
                    Some(with_self_replaced(ty, item.self_ty.as_ref()))
                }
            };
            if ok {
                methods.push(MethodModel {
                    sig: &function.sig,
                    vis: &function.vis,
                    attrs: &function.attrs,
                    is_write: matches!(receiver.kind, ReceiverKind::Reference(_, _, Some(_))),
                    args,
                    output,
                    access: Access::of_block(&function.block),
                });
            }
        }
        resolve_calls(&mut methods);
        Some(Self {
            self_ty: item.self_ty.as_ref(),
            type_ident,
            methods,
        })
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

fn arguments(sig: &Signature, self_ty: &Type) -> Vec<(Ident, Type)> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, typed)| {
            let name = match &*typed.pat {
                Pat::Ident(pat) if pat.subpat.is_none() => pat.ident.clone(),
                _ => quote::format_ident!("__arg{}", i),
            };
            (name, with_self_replaced(&typed.ty, self_ty))
        })
        .collect()
}

/// The type with every `Self` replaced by the impl's type, for the proxy's signatures.
pub(crate) fn with_self_replaced(ty: &Type, self_ty: &Type) -> Type {
    struct ReplaceSelf<'a>(&'a Type);
    impl VisitMut for ReplaceSelf<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
            {
                *ty = self.0.clone();
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}

/// Gives each method the sets of the methods it calls on `self` (to a fixed point); a call
/// to a method outside this block is a use of the whole value.
fn resolve_calls(methods: &mut [MethodModel<'_>]) {
    let names: BTreeMap<String, usize> = methods
        .iter()
        .enumerate()
        .map(|(i, m)| (m.sig.ident.to_string(), i))
        .collect();
    for method in methods.iter_mut() {
        if method
            .access
            .calls
            .iter()
            .any(|call| !names.contains_key(call))
        {
            method.access.whole = true;
        }
    }
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..methods.len() {
            let callees: Vec<usize> = methods[i]
                .access
                .calls
                .iter()
                .filter_map(|call| names.get(call).copied())
                .collect();
            for callee in callees {
                let absorbed = methods[callee].access.clone();
                changed |= methods[i].access.absorb(&absorbed);
            }
        }
    }
}
