//! Code generation: `impl AutoReconnect` that reopens each `Live` field with the secret
//! variable resolved by kind, then field, then `"*"`, plus compile-time checks that every
//! kind in the attribute is the kind of some field.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::ast::LiveStruct;
use super::attr::{AuthKey, Options};

pub(crate) fn auto_reconnect(model: &LiveStruct, options: &Options) -> TokenStream {
    let krate = &options.krate;
    let item = &model.item;
    let ident = &item.ident;
    let table = secret_table(options);
    let reopen = model.fields.iter().map(|field| {
        let name = &field.ident;
        let resource = &field.resource;
        let text = name.to_string();
        quote! {
            #krate::__private::reopen_field(
                &mut self.#name,
                #text,
                #krate::__private::secret_variable(
                    <#resource as #krate::__private::Reconnect>::KIND,
                    #text,
                    #table,
                ),
            )?;
        }
    });
    let kind_checks = kind_checks(model, options);
    quote! {
        #item
        impl #krate::__private::AutoReconnect for #ident {
            fn reopen_live(&mut self) -> ::core::result::Result<(), #krate::__private::ReopenError> {
                #(#reopen)*
                ::core::result::Result::Ok(())
            }
        }
        #kind_checks
    }
}

/// `&[(kind, key, variable), …]`, in the order written.
fn secret_table(options: &Options) -> TokenStream {
    let rows = options.auth.iter().flat_map(|kind| {
        let kind_name = kind.kind.to_string();
        kind.entries.iter().map(move |entry| {
            let key = entry.key.name();
            let variable = &entry.variable;
            quote!((#kind_name, #key, #variable))
        })
    });
    quote!(&[#(#rows),*])
}

/// Each kind in the attribute must be the kind of some `Live` field, and a field named under
/// a kind must be of that kind. Kinds come from `Reconnect::KIND`, so these are constant
/// assertions, reported where the kind or field is written.
fn kind_checks(model: &LiveStruct, options: &Options) -> TokenStream {
    let krate = &options.krate;
    let all_kinds: Vec<TokenStream> = model
        .fields
        .iter()
        .map(|field| {
            let resource = &field.resource;
            quote!(<#resource as #krate::__private::Reconnect>::KIND)
        })
        .collect();
    let mut checks = Vec::new();
    for kind in &options.auth {
        let name = kind.kind.to_string();
        let message =
            format!("unknown auth key: no `Live` field of this struct is a `{name}` resource");
        checks.push(quote_spanned! {kind.kind.span()=>
            ::core::assert!(
                #krate::__private::kind_is_one_of(#name, &[#(#all_kinds),*]),
                #message
            );
        });
        for entry in &kind.entries {
            let AuthKey::Field(field_name) = &entry.key else {
                continue;
            };
            let Some(field) = model.field(field_name) else {
                continue;
            };
            let resource = &field.resource;
            let message =
                format!("unknown auth key: field `{field_name}` is not a `{name}` resource");
            checks.push(quote_spanned! {field_name.span()=>
                ::core::assert!(
                    #krate::__private::kind_is_one_of(
                        #name,
                        &[<#resource as #krate::__private::Reconnect>::KIND],
                    ),
                    #message
                );
            });
        }
    }
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote!(const _: () = { #(#checks)* };)
}
