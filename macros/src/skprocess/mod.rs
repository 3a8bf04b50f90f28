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

#[cfg(test)]
mod tests {
    use quote::quote;

    /// With `crate = …`, no generated path names `skprocess`: only the given path and `::core`.
    #[test]
    fn crate_option_replaces_every_skprocess_path() {
        let expanded = super::expand(
            quote!(
                crate = renamed,
                runs = 2,
                join_in = "1s",
                timeout(run = "1s")
            ),
            quote! {
                impl Worker {
                    fn prerun(&mut self, ctx: &mut Ctx<Self>) {}
                    fn run(&mut self) -> Result<(), String> { Ok(()) }
                    fn postrun(&mut self) {}
                    fn onfinish(&mut self) {}
                    fn result(&mut self) -> Result<u64, String> { Ok(1) }
                    fn error(&mut self, ctx: &mut Ctx<Self>, error: &Error) -> u64 { 0 }
                }
            },
        )
        .to_string();
        assert!(!expanded.contains("skprocess"), "{expanded}");
        assert!(
            expanded.contains("renamed :: __private :: Process"),
            "{expanded}"
        );
    }

    /// Without a result hook the fallbacks are generated; they follow `crate = …` too.
    #[test]
    fn crate_option_reaches_the_fallbacks() {
        let expanded = super::expand(
            quote!(crate = a::b),
            quote!(impl Worker { fn run(&mut self) {} }),
        )
        .to_string();
        assert!(!expanded.contains("skprocess"), "{expanded}");
    }

    #[test]
    fn default_crate_is_absolute() {
        let expanded =
            super::expand(quote!(), quote!(impl Worker { fn run(&mut self) {} })).to_string();
        assert!(
            expanded.contains(":: skprocess :: __private :: Process"),
            "{expanded}"
        );
        assert!(!expanded.contains("compile_error"), "{expanded}");
    }

    #[test]
    fn reports_every_option_mistake_and_still_expands() {
        let expanded = super::expand(
            quote!(
                crate = "x",
                join_in = "500us",
                timeout(run = "99999999999999999999999h", result = "0ms"),
                crate = y
            ),
            quote!(impl Worker { fn run(&mut self) {} }),
        )
        .to_string();
        for message in [
            "expected a path to the skprocess crate for `crate`",
            "duration `500us` is below the millisecond precision of `join_in`",
            "duration `99999999999999999999999h` is too large",
            "duration `0ms` is below the millisecond precision of timeouts",
            "duplicate option `crate`",
        ] {
            assert!(expanded.contains(message), "{message}: {expanded}");
        }
        assert!(expanded.contains("impl :: skprocess :: __private :: Process for Worker"));
    }
}
