//! Code generation for `#[shared]`. Everything goes through `<crate>::__private` by absolute
//! path, so the expansion compiles under `#![no_implicit_prelude]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemImpl, ItemStruct, Type};

use super::ast::{MethodModel, SharedImpl, SharedStruct};
use crate::krate::Krate;

/// The struct unchanged, its proxy `<Name>Shared`, and `impl Shared`.
pub(crate) fn shared_struct(item: &ItemStruct, model: &SharedStruct, krate: &Krate) -> TokenStream {
    let k = krate.at(Span::call_site());
    let name = &item.ident;
    let vis = &item.vis;
    let proxy = format_ident!("{}Shared", name);
    let doc = format!(
        "The shared proxy of [`{name}`]: what `Share<{name}>` dereferences to. Each field is a \
         `Field` proxy whose operations run on the coordinator; a `#[shared] impl {name}` adds \
         its methods here."
    );
    let field_decls = model.fields.iter().map(|field| {
        let (ident, vis, ty) = (field.ident, field.vis, field.ty);
        quote!(#vis #ident: #k::__private::Field<#ty>,)
    });
    let field_inits = model.fields.iter().enumerate().map(|(i, field)| {
        let (ident, ty) = (field.ident, field.ty);
        let index = i as u16;
        quote_spanned!(ty.span()=> #ident: #k::__private::Field::new(link, #index),)
    });
    let dispatch = model.fields.iter().enumerate().map(|(i, field)| {
        let (ident, ty) = (field.ident, field.ty);
        let index = i as u16;
        let apply = quote_spanned!(ty.span()=> #k::__private::SharedField::apply);
        quote!(#index => #apply(&mut self.#ident, op, args, reply),)
    });
    // Through the autoref selector, with no span of the user's: a field type that is not a
    // `SharedField` is reported once, by the checks below, not again here.
    let layouts = model.fields.iter().enumerate().map(|(i, field)| {
        let ty = field.ty;
        let index = i as u16;
        quote!(#index => ::core::option::Option::Some(
            (&&#k::__private::LayoutOf::<#ty>::new()).layout()
        ),)
    });
    let names = model.fields.iter().map(|field| field.ident.to_string());
    let checks = model.fields.iter().map(|field| {
        let ty = field.ty;
        quote_spanned!(ty.span()=> #k::__private::assert_shared_field::<#ty>();)
    });
    quote! {
        #item

        #[doc = #doc]
        #vis struct #proxy {
            #(#field_decls)*
            #[doc(hidden)]
            pub __link: #k::__private::Link,
        }

        impl #k::__private::Shared for #name {
            type Proxy = #proxy;
            const FIELDS: &'static [&'static str] = &[#(#names),*];

            fn proxy(link: &#k::__private::Link) -> #proxy {
                #proxy {
                    #(#field_inits)*
                    __link: ::core::clone::Clone::clone(link),
                }
            }

            fn apply_field(
                &mut self,
                index: u16,
                op: #k::__private::FieldOp,
                args: &[u8],
                reply: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #k::__private::ApplyError> {
                match index {
                    #(#dispatch)*
                    _ => ::core::result::Result::Err(#k::__private::ApplyError::NoSuchTarget(index)),
                }
            }

            fn apply_method(
                &mut self,
                index: u16,
                args: &[u8],
                reply: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #k::__private::ApplyError> {
                #[allow(unused_imports)]
                use #k::__private::{ViaMethods as _, ViaNoMethods as _};
                let (dispatch, _, _) = (&&#k::__private::MethodsOf::<Self>::new()).table();
                dispatch(self, index, args, reply)
            }

            fn field_layout(index: u16) -> ::core::option::Option<#k::__private::Layout> {
                #[allow(unused_imports)]
                use #k::__private::{ViaOpaque as _, ViaSharedField as _};
                match index {
                    #(#layouts)*
                    _ => ::core::option::Option::None,
                }
            }

            fn method_meta(index: u16) -> ::core::option::Option<&'static #k::__private::MethodMeta> {
                #[allow(unused_imports)]
                use #k::__private::{ViaMethods as _, ViaNoMethods as _};
                let (_, _, meta) = (&&#k::__private::MethodsOf::<Self>::new()).table();
                meta(index)
            }

            fn method_name(index: u16) -> ::core::option::Option<&'static str> {
                #[allow(unused_imports)]
                use #k::__private::{ViaMethods as _, ViaNoMethods as _};
                let (_, name, _) = (&&#k::__private::MethodsOf::<Self>::new()).table();
                name(index)
            }
        }

        const _: fn() = || {
            #(#checks)*
        };
    }
}

/// The block unchanged, the proxy's methods, the method dispatch and `SHARED_META`.
pub(crate) fn shared_impl(item: &ItemImpl, model: &SharedImpl, krate: &Krate) -> TokenStream {
    let k = krate.at(Span::call_site());
    let self_ty = model.self_ty;
    let proxy = proxy_type(self_ty, model);
    let proxy_methods = model
        .methods
        .iter()
        .enumerate()
        .map(|(i, method)| proxy_method(i as u16, method, &k));
    let arms = model
        .methods
        .iter()
        .enumerate()
        .map(|(i, method)| dispatch_arm(i as u16, method, self_ty, &k));
    let name_arms = model.methods.iter().enumerate().map(|(i, method)| {
        let index = i as u16;
        let name = method.sig.ident.to_string();
        quote!(#index => ::core::option::Option::Some(#name),)
    });
    let metas = model.methods.iter().map(|method| method_meta(method, &k));
    let type_name = model.type_ident.to_string();
    let checks = model.methods.iter().flat_map(|method| {
        let args = method.args.iter().map(|(_, ty)| ty);
        args.chain(method.output.as_ref())
            .map(|ty| quote_spanned!(ty.span()=> #k::__private::assert_travels::<#ty>();))
            .collect::<Vec<_>>()
    });
    quote! {
        #item

        impl #proxy {
            #(#proxy_methods)*
        }

        impl #k::__private::SharedMethods for #self_ty {
            fn call_method(
                &mut self,
                __index: u16,
                __args: &[u8],
                __reply: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #k::__private::ApplyError> {
                match __index {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#k::__private::ApplyError::NoSuchTarget(__index)),
                }
            }

            fn method_name(index: u16) -> ::core::option::Option<&'static str> {
                match index {
                    #(#name_arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn method_meta(index: u16) -> ::core::option::Option<&'static #k::__private::MethodMeta> {
                let methods: &'static [#k::__private::MethodMeta] = Self::SHARED_META.methods;
                methods.get(<usize as ::core::convert::From<u16>>::from(index))
            }
        }

        impl #self_ty {
            /// What each method of the `#[shared] impl` reads and writes, found at compile time
            /// (suitkaise's `_shared_meta`).
            pub const SHARED_META: #k::__private::SharedMeta = #k::__private::SharedMeta::new(
                #type_name,
                <#self_ty as #k::__private::Shared>::FIELDS,
                &[#(#metas),*],
            );
        }

        const _: fn() = || {
            #(#checks)*
        };
    }
}

/// `path::Tally` → `path::TallyShared`.
fn proxy_type(self_ty: &Type, model: &SharedImpl) -> TokenStream {
    let mut ty = self_ty.clone();
    if let Type::Path(path) = &mut ty {
        if let Some(last) = path.path.segments.last_mut() {
            last.ident = format_ident!("{}Shared", model.type_ident);
        }
    }
    quote!(#ty)
}

fn proxy_method(index: u16, method: &MethodModel, k: &TokenStream) -> TokenStream {
    let name = &method.sig.ident;
    let vis = method.vis;
    let docs = method
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"));
    let params = method.args.iter().map(|(arg, ty)| quote!(#arg: #ty));
    let values = method.args.iter().map(|(arg, _)| arg);
    let target = quote!(#k::__private::Target::Method(#index));
    // Calls carry the signature's span, so a type that cannot travel is reported there.
    let span = method.sig.span();
    let link_call = quote_spanned!(span=> #k::__private::Link::call);
    let link_write = quote_spanned!(span=> #k::__private::Link::write);
    if method.waits() {
        let output = method
            .output
            .as_ref()
            .map_or_else(|| quote!(()), |ty| quote!(#ty));
        quote! {
            #(#docs)*
            #vis fn #name(&self, #(#params),*) -> ::core::result::Result<#output, #k::__private::Error> {
                #link_call(&self.__link, #target, &(#(#values,)*))
            }
        }
    } else {
        quote! {
            #(#docs)*
            #vis fn #name(&self, #(#params),*) {
                #link_write(&self.__link, #target, &(#(#values,)*))
            }
        }
    }
}

fn dispatch_arm(index: u16, method: &MethodModel, self_ty: &Type, k: &TokenStream) -> TokenStream {
    let name = &method.sig.ident;
    let names: Vec<_> = method.args.iter().map(|(arg, _)| arg).collect();
    let types = method.args.iter().map(|(_, ty)| ty);
    let decode = quote_spanned!(method.sig.span()=> #k::__private::decode_args);
    quote! {
        #index => {
            let (#(#names,)*): (#(#types,)*) = #decode(__args)?;
            let __output = <#self_ty>::#name(self, #(#names),*);
            #k::__private::encode_reply(&__output, __reply)
        }
    }
}

fn method_meta(method: &MethodModel, k: &TokenStream) -> TokenStream {
    let name = method.sig.ident.to_string();
    let access = &method.access;
    let whole = || vec!["*".to_owned()];
    let reads: Vec<String> = if access.whole {
        whole()
    } else {
        access.reads.iter().cloned().collect()
    };
    let writes: Vec<String> = match (method.is_write, access.whole) {
        (false, _) => Vec::new(),
        (true, true) => whole(),
        (true, false) => access.writes.iter().cloned().collect(),
    };
    let is_write = method.is_write;
    let waits = method.waits();
    quote!(#k::__private::MethodMeta::new(#name, &[#(#reads),*], &[#(#writes),*], #is_write, #waits))
}
