//! The attribute's options: `crate = path`, and per resource kind the environment variables
//! that hold secrets: `postgres(db = "ORDERS_PASSWORD", "*" = "PGPASSWORD")`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

use crate::krate::Krate;

/// Everything the attribute says.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) krate: Krate,
    pub(crate) auth: Vec<AuthKind>,
}

/// `kind(key = "VARIABLE", …)`: where the secrets of one resource kind come from.
pub(crate) struct AuthKind {
    pub(crate) kind: Ident,
    pub(crate) entries: Vec<AuthEntry>,
}

/// `field = "VARIABLE"` or `"*" = "VARIABLE"`.
pub(crate) struct AuthEntry {
    pub(crate) key: AuthKey,
    pub(crate) variable: LitStr,
}

pub(crate) enum AuthKey {
    Field(Ident),
    /// `"*"`: every field of the kind that has no entry of its own.
    Any(LitStr),
}

impl AuthKey {
    pub(crate) fn name(&self) -> String {
        match self {
            AuthKey::Field(ident) => ident.to_string(),
            AuthKey::Any(_) => "*".to_owned(),
        }
    }
}

/// One comma-separated item of the attribute.
enum Item {
    Crate(Krate),
    Kind(AuthKind),
}

impl Options {
    /// Parses the attribute, pushing every mistake to `errors` and keeping what is valid.
    pub(crate) fn parse(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Self {
        let mut options = Options::default();
        let mut seen_crate = false;
        let parsed = Punctuated::<ItemOrError, Token![,]>::parse_terminated.parse2(attr);
        let items = match parsed {
            Ok(items) => items,
            Err(e) => {
                errors.push(e);
                return options;
            }
        };
        for item in items {
            match item.0 {
                Ok(Item::Crate(krate)) if !seen_crate => {
                    seen_crate = true;
                    options.krate = krate;
                }
                Ok(Item::Crate(_)) => errors.push(syn::Error::new(
                    proc_macro2::Span::call_site(),
                    "duplicate option `crate`",
                )),
                Ok(Item::Kind(kind)) => options.auth.push(kind),
                Err(e) => errors.push(e),
            }
        }
        options
    }
}

/// An item, or the error it made, so one mistake does not hide the next.
struct ItemOrError(syn::Result<Item>);

impl Parse for ItemOrError {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![crate]) {
            let keyword: Token![crate] = input.parse()?;
            input.parse::<Token![=]>()?;
            let path: syn::Path = input.parse()?;
            let krate = syn::parse2::<CrateValue>(quote::quote!(crate = #path))
                .map(|value| value.0)
                .map_err(|e| syn::Error::new(keyword.span, e.to_string()));
            return Ok(Self(krate.map(Item::Crate)));
        }
        let name: Ident = input.parse()?;
        if !input.peek(syn::token::Paren) {
            // Skip `= value` so the next item still parses.
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                input.parse::<syn::Expr>()?;
            }
            return Ok(Self(Err(syn::Error::new(
                name.span(),
                format!(
                    "unknown option `{name}`; expected `crate = path` or a resource kind with the variables that hold its secrets, such as `postgres(\"*\" = \"PGPASSWORD\")`"
                ),
            ))));
        }
        let content;
        syn::parenthesized!(content in input);
        let entries = Punctuated::<AuthEntry, Token![,]>::parse_terminated(&content)?;
        Ok(Self(Ok(Item::Kind(AuthKind {
            kind: name,
            entries: entries.into_iter().collect(),
        }))))
    }
}

impl Parse for AuthEntry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = if input.peek(LitStr) {
            let any: LitStr = input.parse()?;
            if any.value() != "*" {
                return Err(syn::Error::new(
                    any.span(),
                    "expected a field name or `\"*\"` (every other field of this kind)",
                ));
            }
            AuthKey::Any(any)
        } else {
            AuthKey::Field(input.parse()?)
        };
        input.parse::<Token![=]>()?;
        let variable: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the name of the environment variable that holds the secret, as a string literal",
            )
        })?;
        Ok(Self { key, variable })
    }
}

/// `crate = path`, parsed with the shared `crate` option parser.
struct CrateValue(Krate);

impl Parse for CrateValue {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut krate = None;
        syn::meta::parser(|meta| {
            krate = Some(Krate::parse_value(&meta)?);
            Ok(())
        })
        .parse2(input.parse()?)?;
        Ok(Self(krate.unwrap_or_default()))
    }
}
