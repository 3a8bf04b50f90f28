//! The `crate = path` option: where generated code finds the `skprocess` crate.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprPath, PathArguments};

/// The path generated code starts with: `::skprocess` unless the user names another one, for
/// example a crate that re-exports skprocess as `my_framework::skprocess`.
#[derive(Default)]
pub(crate) struct Krate {
    path: Option<syn::Path>,
}

impl Krate {
    /// Parses `= path` after `crate`.
    pub(crate) fn parse_value(meta: &ParseNestedMeta) -> syn::Result<Self> {
        match meta.value()?.parse::<Expr>()? {
            Expr::Path(ExprPath {
                attrs,
                qself: None,
                path,
            }) if attrs.is_empty()
                && path
                    .segments
                    .iter()
                    .all(|s| matches!(s.arguments, PathArguments::None)) =>
            {
                Ok(Self { path: Some(path) })
            }
            other => Err(syn::Error::new_spanned(
                other,
                "expected a path to the skprocess crate for `crate`, such as `my_framework::skprocess`",
            )),
        }
    }

    /// The path with the given span when it is the default `::skprocess`, so that a path such
    /// as `::skprocess::__private::IntoHookResult` spans one place in error messages. A path the
    /// user wrote keeps its own spans: they resolve it where it was written (and keep `$crate`
    /// working).
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        match &self.path {
            Some(path) => path.to_token_stream(),
            None => quote_spanned!(span=> ::skprocess),
        }
    }
}

impl ToTokens for Krate {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.at(Span::call_site()));
    }
}

/// Parses an attribute whose only option is `crate = path` (`#[skprocess::main]`,
/// `#[shared]`), collecting one error per mistake; `attribute` names it in messages.
pub(crate) fn parse_crate_only(
    attr: TokenStream,
    attribute: &str,
    errors: &mut Vec<syn::Error>,
) -> Krate {
    let mut krate = Krate::default();
    let mut seen_crate = false;
    let parser = syn::meta::parser(|meta| {
        let result = if !meta.path.is_ident("crate") {
            let name = meta.path.to_token_stream().to_string().replace(' ', "");
            Err(meta.error(format!(
                "unknown option `{name}` for `{attribute}`; expected `crate`"
            )))
        } else if std::mem::replace(&mut seen_crate, true) {
            Err(meta.error("duplicate option `crate`"))
        } else {
            Krate::parse_value(&meta).map(|parsed| krate = parsed)
        };
        if let Err(e) = result {
            errors.push(e);
            crate::errors::skip_value(&meta);
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    krate
}
