//! `#[skprocess::main]`: inserts the entry hook at the top of `main`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Item, ItemFn};

use crate::errors::{combine, item_name_span};
use crate::krate::Krate;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let krate = parse_options(attr, &mut errors);
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
        (Some(function), None) => with_entry_hook(function, &krate),
        (None, None) => item,
    }
}

/// Parses `crate = path`, the only option, collecting one error per mistake.
fn parse_options(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Krate {
    crate::krate::parse_crate_only(attr, "#[skprocess::main]", errors)
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

fn with_entry_hook(mut function: ItemFn, krate: &Krate) -> TokenStream {
    let init: syn::Stmt = syn::parse_quote!(#krate::init(););
    function.block.stmts.insert(0, init);
    function.into_token_stream()
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn inserts_init_from_the_given_crate() {
        let expanded = super::expand(
            quote!(crate = renamed),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        assert_eq!(expanded, "fn main () { renamed :: init () ; }");
    }

    #[test]
    fn inserts_init_from_skprocess_by_default() {
        let expanded = super::expand(
            quote!(),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        assert_eq!(expanded, "fn main () { :: skprocess :: init () ; }");
    }

    #[test]
    fn reports_every_mistake_and_keeps_the_function() {
        let expanded = super::expand(
            quote!(crate = "x", threads = 4, crate = y),
            quote!(
                fn main() {
                    let kept = 1;
                }
            ),
        )
        .to_string();
        for message in [
            "expected a path to the skprocess crate for `crate`",
            "unknown option `threads` for `#[skprocess::main]`; expected `crate`",
            "duplicate option `crate`",
        ] {
            assert!(expanded.contains(message), "{message}: {expanded}");
        }
        assert!(expanded.contains("let kept = 1"), "{expanded}");
    }
}
