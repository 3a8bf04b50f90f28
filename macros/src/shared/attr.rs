//! The options of `#[shared(...)]`: only `crate = path`.

use proc_macro2::TokenStream;

use crate::krate::Krate;

/// Parses `crate = path`, collecting one error per mistake.
pub(crate) fn parse(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Krate {
    crate::krate::parse_crate_only(attr, "#[shared]", errors)
}
