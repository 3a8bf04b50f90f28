//! The struct as `#[autoreconnect]` sees it: its `Live<T>` fields, keeping the syn nodes so
//! errors point at the user's tokens.

use syn::{Fields, GenericArgument, Ident, ItemStruct, PathArguments, Type};

/// A struct and its live fields.
pub(crate) struct LiveStruct {
    pub(crate) item: ItemStruct,
    pub(crate) fields: Vec<LiveField>,
}

/// A field of type `Live<T>`.
pub(crate) struct LiveField {
    pub(crate) ident: Ident,
    /// The `T` of `Live<T>`.
    pub(crate) resource: Type,
}

impl LiveStruct {
    /// Finds the live fields; `None` (with an error) when the struct cannot have any.
    pub(crate) fn build(item: ItemStruct, errors: &mut Vec<syn::Error>) -> Option<Self> {
        let Fields::Named(named) = &item.fields else {
            errors.push(syn::Error::new(
                item.ident.span(),
                "`#[autoreconnect]` needs a struct with named fields (it reopens each `Live<…>` field by name)",
            ));
            return None;
        };
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                let resource = live_resource(&field.ty)?;
                Some(LiveField {
                    ident: field.ident.clone()?,
                    resource,
                })
            })
            .collect();
        Some(Self { item, fields })
    }

    pub(crate) fn field(&self, name: &Ident) -> Option<&LiveField> {
        self.fields.iter().find(|field| field.ident == *name)
    }
}

/// `T` when `ty` is written `Live<T>` (with any path before `Live`).
fn live_resource(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Live" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(resource)] => Some(resource.clone()),
        _ => None,
    }
}
