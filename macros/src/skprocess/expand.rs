//! Code generation: `impl Process` over the user's hooks, plus the registry entry (a static in
//! the runtime's `PROCESS_TYPES` linkme slice, the same as `register!` expands to).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::ast::{Hook, HookKind, ProcessImpl, Returns};
use super::attr::{Options, Runs, u64_literal};
use crate::krate::Krate;

/// Everything generated for a valid block. Every path is absolute: `::core::…`, or the crate
/// path (`::skprocess` unless `crate = …` says otherwise) followed by `::__private::…`.
pub(crate) fn process_impl(model: &ProcessImpl, options: &Options) -> TokenStream {
    let krate = &options.krate;
    let self_ty = model.self_ty();
    let name = self_ty.to_token_stream().to_string().replace(' ', "");
    let output = output_type(model, krate);
    let inbox = message_type(options.inbox.as_ref(), krate);
    let outbox = message_type(options.outbox.as_ref(), krate);
    let config = default_config(options);
    let has_error_hook = model.hook(HookKind::Error).is_some();
    let hooks = model
        .hooks
        .iter()
        .map(|hook| hook_method(self_ty, hook, krate));
    let run_fallback = model.hook(HookKind::Run).is_none().then(|| {
        quote!(
            fn run(
                &mut self,
                _ctx: &mut #krate::__private::Ctx<Self>,
            ) -> #krate::__private::HookResult {
                ::core::result::Result::Ok(())
            }
        )
    });
    let result_fallback = model.hook(HookKind::Result).is_none().then(|| {
        quote!(
            fn result(
                &mut self,
                _ctx: &mut #krate::__private::Ctx<Self>,
            ) -> ::core::result::Result<(), #krate::__private::HookFailure> {
                ::core::result::Result::Ok(())
            }
        )
    });
    let item = &model.item;
    quote! {
        #item
        impl #krate::__private::Process for #self_ty {
            type Output = #output;
            type Inbox = #inbox;
            type Outbox = #outbox;
            const KEY: &'static str = ::core::concat!(::core::module_path!(), "::", #name);
            const HAS_ERROR_HOOK: bool = #has_error_hook;
            fn default_config() -> #krate::__private::Config {
                #config
            }
            fn reopen_live(&mut self) -> ::core::result::Result<(), #krate::__private::ReopenError> {
                // `#[autoreconnect]` types reopen their `Live` fields; others have none.
                #[allow(unused_imports)]
                use #krate::__private::{ReopenNothing as _, ReopenWithAutoReconnect as _};
                (&&#krate::__private::ReopenProbe(::core::cell::RefCell::new(self))).reopen_fields()
            }
            #(#hooks)*
            #run_fallback
            #result_fallback
        }
        const _: () = {
            #[#krate::__private::linkme::distributed_slice(#krate::__private::PROCESS_TYPES)]
            #[linkme(crate = #krate::__private::linkme)]
            static ENTRY: #krate::__private::ProcessEntry =
                #krate::__private::ProcessEntry::lifecycle::<#self_ty>();
        };
    }
}

fn output_type(model: &ProcessImpl, krate: &Krate) -> TokenStream {
    match model.hook(HookKind::Result).map(|h| &h.returns) {
        None | Some(Returns::Unit) => quote!(()),
        Some(Returns::Value(ty)) => ty.to_token_stream(),
        Some(Returns::Fallible(ty)) => quote!(<#ty as #krate::__private::FallibleOutput>::Ok),
    }
}

fn message_type(ty: Option<&Type>, krate: &Krate) -> TokenStream {
    ty.map_or_else(
        || quote!(#krate::__private::NoMessages),
        ToTokens::to_token_stream,
    )
}

fn default_config(options: &Options) -> TokenStream {
    let krate = &options.krate;
    // Trait items are called by their full path: under `#![no_implicit_prelude]` no trait,
    // not even `Default`, is in scope.
    let mut config = quote!(<#krate::__private::Config as ::core::default::Default>::default());
    match &options.runs {
        Some(Runs::Count(n)) => {
            let n = u64_literal(*n);
            config.extend(quote!(.runs(#n)));
        }
        Some(Runs::Unbounded) => config.extend(quote!(.runs(::core::option::Option::None))),
        None => {}
    }
    if let Some(lives) = options.lives {
        config.extend(quote!(.lives(#lives)));
    }
    if let Some(budget) = &options.join_in {
        config.extend(quote!(.join_in(#budget)));
    }
    for (hook, limit) in &options.timeouts {
        let variant = hook_variant(hook);
        config.extend(quote!(.timeout(#krate::__private::Hook::#variant, #limit)));
    }
    config
}

fn hook_variant(hook: &syn::Ident) -> syn::Ident {
    let name = hook.to_string();
    let mut chars = name.chars();
    let capitalized: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    syn::Ident::new(&capitalized, hook.span())
}

/// The trait method that forwards to the user's hook.
fn hook_method(self_ty: &Type, hook: &Hook, crate_path: &Krate) -> TokenStream {
    let ident = &hook.ident;
    let span = ident.span();
    let krate = crate_path.at(span);
    let args = if hook.takes_ctx {
        quote!(self, ctx)
    } else {
        quote!(self)
    };
    match hook.kind {
        HookKind::Result => {
            let body = into_output(
                &hook.returns,
                quote_spanned!(span=> <#self_ty>::#ident(#args)),
                crate_path,
            );
            quote_spanned! {span=>
                #[allow(unused_variables)]
                fn result(&mut self, ctx: &mut #krate::__private::Ctx<Self>) -> ::core::result::Result<Self::Output, #krate::__private::HookFailure> {
                    #body
                }
            }
        }
        HookKind::Error => {
            let args = if hook.takes_ctx {
                quote!(self, ctx, error)
            } else {
                quote!(self, error)
            };
            let body = into_output(
                &hook.returns,
                quote_spanned!(span=> <#self_ty>::#ident(#args)),
                crate_path,
            );
            quote_spanned! {span=>
                #[allow(unused_variables)]
                fn error(&mut self, ctx: &mut #krate::__private::Ctx<Self>, error: &#krate::__private::Error) -> ::core::result::Result<Self::Output, #krate::__private::HookFailure> {
                    #body
                }
            }
        }
        _ => {
            // The returned value is named with the return type's span, so an unsupported return
            // type is reported where it is written.
            let returned = Ident::new("returned", hook.returns.ty().map_or(span, Spanned::span));
            let convert =
                quote_spanned!(span=> #krate::__private::IntoHookResult::into_hook_result);
            let body = quote! {
                let #returned = <#self_ty>::#ident(#args);
                #convert(#returned)
            };
            quote_spanned! {span=>
                #[allow(unused_variables)]
                fn #ident(&mut self, ctx: &mut #krate::__private::Ctx<Self>) -> #krate::__private::HookResult {
                    #body
                }
            }
        }
    }
}

fn into_output(returns: &Returns, call: TokenStream, krate: &Krate) -> TokenStream {
    match returns {
        Returns::Fallible(_) => quote!(#krate::__private::FallibleOutput::into_output(#call)),
        Returns::Unit | Returns::Value(_) => quote!(::core::result::Result::Ok(#call)),
    }
}
