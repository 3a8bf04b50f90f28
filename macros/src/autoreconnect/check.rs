//! Rules for `#[autoreconnect]`, each reported where the user wrote the mistake. Every rule
//! runs, so all independent mistakes are reported at once.

use std::collections::HashSet;

use super::ast::LiveStruct;
use super::attr::{AuthKey, Options};

pub(crate) fn check(model: &LiveStruct, options: &Options, errors: &mut Vec<syn::Error>) {
    check_not_generic(model, errors);
    check_has_live_fields(model, errors);
    check_kinds_are_unique(options, errors);
    check_entries(model, options, errors);
}

/// A process type is one concrete type, so the generated impl names it without parameters.
fn check_not_generic(model: &LiveStruct, errors: &mut Vec<syn::Error>) {
    if !model.item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &model.item.generics,
            "`#[autoreconnect]` does not support generic structs",
        ));
    }
}

/// The attribute does nothing on a struct without `Live<…>` fields, which is a mistake.
fn check_has_live_fields(model: &LiveStruct, errors: &mut Vec<syn::Error>) {
    if model.fields.is_empty() {
        errors.push(syn::Error::new(
            model.item.ident.span(),
            format!(
                "`#[autoreconnect]` found no `Live<…>` field in `{}`; live resources are fields of type `Live<T>`",
                model.item.ident
            ),
        ));
    }
}

/// Each resource kind is listed once, so there is one place that says where its secrets are.
fn check_kinds_are_unique(options: &Options, errors: &mut Vec<syn::Error>) {
    let mut seen = HashSet::new();
    for kind in &options.auth {
        if !seen.insert(kind.kind.to_string()) {
            errors.push(syn::Error::new(
                kind.kind.span(),
                format!("duplicate resource kind `{}`", kind.kind),
            ));
        }
    }
}

/// Every key names a `Live` field (or is `"*"`), once per kind, and every variable is a
/// plausible environment variable name — a name, never the secret itself.
fn check_entries(model: &LiveStruct, options: &Options, errors: &mut Vec<syn::Error>) {
    let live_names: Vec<String> = model
        .fields
        .iter()
        .map(|f| format!("`{}`", f.ident))
        .collect();
    for kind in &options.auth {
        let mut seen = HashSet::new();
        for entry in &kind.entries {
            if !seen.insert(entry.key.name()) {
                let span = match &entry.key {
                    AuthKey::Field(ident) => ident.span(),
                    AuthKey::Any(any) => any.span(),
                };
                errors.push(syn::Error::new(
                    span,
                    format!("duplicate key `{}` in `{}(…)`", entry.key.name(), kind.kind),
                ));
            }
            if let AuthKey::Field(ident) = &entry.key {
                if model.field(ident).is_none() {
                    errors.push(syn::Error::new(
                        ident.span(),
                        format!(
                            "no `Live` field named `{ident}`; the `Live` fields of `{}` are {}",
                            model.item.ident,
                            if live_names.is_empty() {
                                "none".to_owned()
                            } else {
                                live_names.join(", ")
                            }
                        ),
                    ));
                }
            }
            let variable = entry.variable.value();
            if !is_variable_name(&variable) {
                errors.push(syn::Error::new(
                    entry.variable.span(),
                    format!(
                        "`{variable}` is not an environment variable name: give the name of the variable that holds the secret (letters, digits and `_`, such as `PGPASSWORD`), never the secret itself"
                    ),
                ));
            }
        }
    }
}

/// Upper-case letters, digits and `_`, not starting with a digit: the portable shape, and
/// nothing a password would usually look like.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}
