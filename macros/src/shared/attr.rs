//! The options of `#[shared(...)]`: only `crate = path`.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::skip_value;
use crate::krate::Krate;

/// Parses `crate = path`, collecting one error per mistake.
pub(crate) fn parse(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Krate {
    let mut krate = Krate::default();
    let mut seen_crate = false;
    let parser = syn::meta::parser(|meta| {
        let result = if !meta.path.is_ident("crate") {
            let name = meta.path.to_token_stream().to_string().replace(' ', "");
            Err(meta.error(format!(
                "unknown option `{name}` for `#[shared]`; expected `crate`"
            )))
        } else if std::mem::replace(&mut seen_crate, true) {
            Err(meta.error("duplicate option `crate`"))
        } else {
            Krate::parse_value(&meta).map(|parsed| krate = parsed)
        };
        if let Err(e) = result {
            errors.push(e);
            skip_value(&meta);
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    krate
}
