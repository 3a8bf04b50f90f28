//! `#[skprocess]`: options → validated model → checks → expansion.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::errors::{combine, item_name_span};

/// Expands `#[skprocess(attr)] item`; on error, emits the errors and the item unchanged.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let options = attr::Options::parse(attr, &mut errors);
    let model = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(block)) => Some(ast::ProcessImpl::build(block, &mut errors)),
        Ok(other) => {
            errors.push(syn::Error::new(
                item_name_span(&other),
                "`#[skprocess]` must be placed on an `impl` block",
            ));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match (model, combine(errors)) {
        (Some(model), None) => expand::process_impl(&model, &options),
        // The impl is still generated from the hooks that are valid, so the user's code that
        // names `Ctx<Self>` or calls `start()` raises no follow-up errors.
        (Some(model), Some(error)) if model.is_expandable() => {
            let error = error.to_compile_error();
            let expanded = expand::process_impl(&model, &options);
            quote!(#error #expanded)
        }
        (_, Some(error)) => {
            let error = error.to_compile_error();
            quote!(#error #item)
        }
        (None, None) => item,
    }
}
