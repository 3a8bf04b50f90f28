//! `#[skprocess::main]`: inserts the entry hook at the top of `main`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Item, ItemFn};

use crate::errors::{combine, item_name_span};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(
            &attr,
            "`#[skprocess::main]` takes no arguments",
        ));
    }
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => Some(function),
        Ok(other) => {
            errors.push(not_a_fn(&other));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if let Some(asyncness) = function.as_ref().and_then(|f| f.sig.asyncness) {
        errors.push(syn::Error::new(
            asyncness.span(),
            "`#[skprocess::main]` does not support `async fn main`; put it on a synchronous `main` and start your async runtime inside",
        ));
    }
    match (function, combine(errors)) {
        (Some(function), Some(error)) => {
            let error = error.to_compile_error();
            let function = without_async_main(function);
            quote!(#error #function)
        }
        (_, Some(error)) => {
            let error = error.to_compile_error();
            quote!(#error #item)
        }
        (Some(function), None) => with_entry_hook(function),
        (None, None) => item,
    }
}

fn not_a_fn(item: &Item) -> syn::Error {
    syn::Error::new(
        item_name_span(item),
        "`#[skprocess::main]` must be placed on `fn main`",
    )
}

/// Keeps a rejected `async fn main` as an ordinary async function beside an empty `main`, so
/// neither rustc's own "`main` is not allowed to be `async`" nor one "`await` is only allowed
/// inside `async` functions" per `.await` in the body is added to our error.
fn without_async_main(mut function: ItemFn) -> TokenStream {
    if function.sig.asyncness.is_none() || function.sig.ident != "main" {
        return function.into_token_stream();
    }
    function.sig.ident = syn::Ident::new("__skprocess_async_main", function.sig.ident.span());
    quote! {
        #[allow(dead_code)]
        #function
        fn main() {}
    }
}

fn with_entry_hook(mut function: ItemFn) -> TokenStream {
    let init: syn::Stmt = syn::parse_quote!(::skprocess::init(););
    function.block.stmts.insert(0, init);
    function.into_token_stream()
}
