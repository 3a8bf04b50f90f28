//! The options of `#[skprocess(...)]`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, Type};

use crate::duration::{self, DurationLit};
use crate::errors::skip_value;
use crate::krate::Krate;

/// Option names, for error messages.
const OPTIONS: &str = "`runs`, `lives`, `join_in`, `timeout`, `inbox`, `outbox`, `crate`";
/// Hooks that accept a timeout.
pub(crate) const TIMEOUT_HOOKS: [&str; 6] =
    ["prerun", "run", "postrun", "onfinish", "result", "error"];

/// `runs = N` or `runs = None`.
pub(crate) enum Runs {
    Count(u64),
    Unbounded,
}

/// The parsed options; each keeps its span for later checks.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) runs: Option<Runs>,
    pub(crate) lives: Option<u32>,
    pub(crate) join_in: Option<DurationLit>,
    pub(crate) timeouts: Vec<(Ident, DurationLit)>,
    pub(crate) inbox: Option<Type>,
    pub(crate) outbox: Option<Type>,
    pub(crate) krate: Krate,
    seen: Vec<String>,
}

impl Options {
    /// Parses every option, collecting one error per mistake.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Vec<syn::Error>) -> Self {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| {
            if let Err(e) = options.parse_one(&meta) {
                errors.push(e);
                skip_value(&meta);
            }
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
            errors.push(e);
        }
        options
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta) -> syn::Result<()> {
        let name = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        self.reject_duplicate(meta, &name)?;
        match name.as_str() {
            "runs" => self.runs = Some(parse_runs(meta)?),
            "lives" => self.lives = Some(parse_lives(meta)?),
            "join_in" => self.join_in = Some(parse_duration(meta, "join_in", "`join_in`")?),
            "timeout" => self.timeouts = parse_timeouts(meta)?,
            "inbox" => self.inbox = Some(meta.value()?.parse()?),
            "outbox" => self.outbox = Some(meta.value()?.parse()?),
            "crate" => self.krate = Krate::parse_value(meta)?,
            _ => {
                return Err(meta.error(format!(
                    "unknown option `{}`; expected one of {OPTIONS}",
                    path_text(meta)
                )));
            }
        }
        Ok(())
    }

    fn reject_duplicate(&mut self, meta: &ParseNestedMeta, name: &str) -> syn::Result<()> {
        if self.seen.iter().any(|seen| seen == name) {
            return Err(meta.error(format!("duplicate option `{name}`")));
        }
        self.seen.push(name.to_owned());
        Ok(())
    }
}

fn path_text(meta: &ParseNestedMeta) -> String {
    quote::ToTokens::to_token_stream(&meta.path)
        .to_string()
        .replace(' ', "")
}

fn parse_runs(meta: &ParseNestedMeta) -> syn::Result<Runs> {
    let value: Expr = meta.value()?.parse()?;
    match &value {
        Expr::Path(path) if path.path.is_ident("None") => Ok(Runs::Unbounded),
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if int.suffix().is_empty() || int.suffix() == "u64" => {
            Ok(Runs::Count(int.base10_parse()?))
        }
        _ => Err(syn::Error::new_spanned(
            value,
            "expected an integer or `None` for `runs`",
        )),
    }
}

fn parse_lives(meta: &ParseNestedMeta) -> syn::Result<u32> {
    let value: Expr = meta.value()?.parse()?;
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &value
    else {
        return Err(syn::Error::new_spanned(
            value,
            "expected an integer of at least 1 for `lives`",
        ));
    };
    match int.base10_parse::<u32>() {
        Ok(0) => Err(syn::Error::new(
            int.span(),
            "`lives` must be at least 1: it counts the first attempt",
        )),
        Ok(lives) => Ok(lives),
        Err(_) => Err(syn::Error::new(
            int.span(),
            "expected an integer of at least 1 for `lives`",
        )),
    }
}

fn parse_timeouts(meta: &ParseNestedMeta) -> syn::Result<Vec<(Ident, DurationLit)>> {
    let mut timeouts: Vec<(Ident, DurationLit)> = Vec::new();
    let mut errors = Vec::new();
    meta.parse_nested_meta(|hook| {
        match parse_timeout(&hook, &timeouts) {
            Ok(entry) => timeouts.push(entry),
            Err(e) => {
                errors.push(e);
                skip_value(&hook);
            }
        }
        Ok(())
    })?;
    match crate::errors::combine(errors) {
        Some(error) => Err(error),
        None => Ok(timeouts),
    }
}

fn parse_timeout(
    hook: &ParseNestedMeta,
    seen: &[(Ident, DurationLit)],
) -> syn::Result<(Ident, DurationLit)> {
    let Some(ident) = hook
        .path
        .get_ident()
        .filter(|i| TIMEOUT_HOOKS.contains(&i.to_string().as_str()))
    else {
        return Err(hook.error(format!(
            "unknown hook `{}` in `timeout`; expected one of `prerun`, `run`, `postrun`, `onfinish`, `result`, `error`",
            path_text(hook)
        )));
    };
    if seen.iter().any(|(s, _)| s == ident) {
        return Err(hook.error(format!("duplicate timeout for `{ident}`")));
    }
    let limit = parse_duration(hook, &ident.to_string(), "timeouts")?;
    Ok((ident.clone(), limit))
}

/// Parses `= "250ms"`; `precision_of` names what the duration limits, for the error on a
/// value below a millisecond.
fn parse_duration(
    meta: &ParseNestedMeta,
    option: &str,
    precision_of: &str,
) -> syn::Result<DurationLit> {
    match meta.value()?.parse::<Expr>()? {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => duration::parse(&lit, precision_of),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a duration string such as `\"250ms\"` for `{option}`"),
        )),
    }
}

/// A literal `u64` token for generated code.
pub(crate) fn u64_literal(value: u64) -> LitInt {
    LitInt::new(&format!("{value}u64"), Span::call_site())
}
