//! `#[shared]`: on a struct, the proxy and the field dispatch; on its `impl` block, the proxy
//! methods, the method dispatch and the read/write metadata. Options → validated model
//! (`ast`, with the body analysis in `access`) → checks → expansion.

mod access;
mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::errors::{combine, item_name_span};

/// Expands `#[shared(attr)] item`; on error, emits the errors and the item unchanged.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let krate = attr::parse(attr, &mut errors);
    let expanded = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => {
            let model = ast::SharedStruct::build(&item, &mut errors);
            check::shared_struct(&item, &mut errors);
            model.map(|model| expand::shared_struct(&item, &model, &krate))
        }
        Ok(Item::Impl(item)) => {
            let model = ast::SharedImpl::build(&item, &mut errors);
            model.map(|model| expand::shared_impl(&item, &model, &krate))
        }
        Ok(other) => {
            errors.push(syn::Error::new(
                item_name_span(&other),
                "`#[shared]` must be placed on a struct with named fields or on its `impl` block",
            ));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    match (expanded, combine(errors)) {
        (Some(expanded), None) => expanded,
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

    #[test]
    fn crate_option_replaces_every_skprocess_path() {
        for item in [
            quote!(
                struct Tally {
                    counter: u64,
                }
            ),
            quote!(impl Tally { fn bump(&mut self) { self.counter += 1; } }),
        ] {
            let expanded = super::expand(quote!(crate = renamed), item).to_string();
            assert!(!expanded.contains("skprocess"), "{expanded}");
            assert!(expanded.contains("renamed :: __private"), "{expanded}");
        }
    }
}
