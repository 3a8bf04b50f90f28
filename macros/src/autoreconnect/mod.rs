//! `#[autoreconnect]`: options → model of the struct's `Live` fields → checks → expansion.

mod ast;
mod attr;
mod check;
mod expand;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::errors::{combine, item_name_span};

/// Expands `#[autoreconnect(attr)] item`; on error, emits the errors and the item unchanged.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let options = attr::Options::parse(attr, &mut errors);
    let model = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(strukt)) => ast::LiveStruct::build(strukt, &mut errors),
        Ok(other) => {
            errors.push(syn::Error::new(
                item_name_span(&other),
                "`#[autoreconnect]` must be placed on a struct",
            ));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if let Some(model) = &model {
        check::check(model, &options, &mut errors);
    }
    match (model, combine(errors)) {
        (Some(model), None) => expand::auto_reconnect(&model, &options),
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
    fn resolves_secrets_and_follows_the_crate_option() {
        let expanded = super::expand(
            quote!(
                postgres(db = "ORDERS_PASSWORD", "*" = "PGPASSWORD"),
                crate = renamed
            ),
            quote!(
                struct Worker {
                    db: Live<postgres::Client>,
                    other: u32,
                }
            ),
        )
        .to_string();
        assert!(!expanded.contains("skprocess"), "{expanded}");
        assert!(
            expanded.contains("renamed :: __private :: AutoReconnect"),
            "{expanded}"
        );
        assert!(expanded.contains("\"ORDERS_PASSWORD\""), "{expanded}");
        assert!(!expanded.contains("self . other"), "{expanded}");
    }

    #[test]
    fn reports_every_mistake_at_once() {
        let expanded = super::expand(
            quote!(
                postgres(dbb = "X", db = "lower case"),
                postgres("*" = "Y"),
                bogus = 1
            ),
            quote!(
                struct Worker {
                    db: Live<postgres::Client>,
                }
            ),
        )
        .to_string();
        for message in [
            "no `Live` field named `dbb`",
            "`lower case` is not an environment variable name",
            "duplicate resource kind `postgres`",
            "unknown option `bogus`",
        ] {
            assert!(expanded.contains(message), "{message}: {expanded}");
        }
    }
}
