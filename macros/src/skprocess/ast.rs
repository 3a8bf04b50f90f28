//! The validated model of an `impl` block under `#[skprocess]`.

use syn::{ImplItem, ItemImpl, ReturnType, Type};

use super::check;

/// A lifecycle hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HookKind {
    Prerun,
    Run,
    Postrun,
    Onfinish,
    Result,
    Error,
}

impl HookKind {
    pub(crate) const ALL: [HookKind; 6] = [
        HookKind::Prerun,
        HookKind::Run,
        HookKind::Postrun,
        HookKind::Onfinish,
        HookKind::Result,
        HookKind::Error,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            HookKind::Prerun => "prerun",
            HookKind::Run => "run",
            HookKind::Postrun => "postrun",
            HookKind::Onfinish => "onfinish",
            HookKind::Result => "result",
            HookKind::Error => "error",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// What a hook returns.
pub(crate) enum Returns {
    /// Nothing (`()`).
    Unit,
    /// `Result<T, E>` (any path whose last segment is `Result`).
    Fallible(Type),
    /// A plain value.
    Value(Type),
}

impl Returns {
    pub(crate) fn of(output: &ReturnType) -> Self {
        match output {
            ReturnType::Default => Returns::Unit,
            ReturnType::Type(_, ty) if is_result(ty) => Returns::Fallible((**ty).clone()),
            ReturnType::Type(_, ty) => Returns::Value((**ty).clone()),
        }
    }

    /// The return type as written, if any.
    pub(crate) fn ty(&self) -> Option<&Type> {
        match self {
            Returns::Unit => None,
            Returns::Fallible(ty) | Returns::Value(ty) => Some(ty),
        }
    }
}

fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// One hook as the user wrote it.
pub(crate) struct Hook {
    pub(crate) kind: HookKind,
    pub(crate) ident: syn::Ident,
    pub(crate) takes_ctx: bool,
    pub(crate) returns: Returns,
}

/// The `impl` block: the user's item, kept to be emitted unchanged, and its hooks.
pub(crate) struct ProcessImpl {
    pub(crate) item: ItemImpl,
    pub(crate) hooks: Vec<Hook>,
}

impl ProcessImpl {
    /// Builds the model, pushing one error per mistake found.
    pub(crate) fn build(item: ItemImpl, errors: &mut Vec<syn::Error>) -> Self {
        check::impl_block(&item, errors);
        let hooks = item
            .items
            .iter()
            .filter_map(|i| match i {
                ImplItem::Fn(method) => Some(method),
                _ => None,
            })
            .filter_map(|method| check::method(method, errors))
            .collect();
        let model = Self { item, hooks };
        check::required_hooks(&model, errors);
        model
    }

    pub(crate) fn hook(&self, kind: HookKind) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.kind == kind)
    }

    /// Whether an `impl Process` can be generated at all (inherent, not generic).
    pub(crate) fn is_expandable(&self) -> bool {
        self.item.trait_.is_none() && self.item.generics.params.is_empty()
    }

    pub(crate) fn self_ty(&self) -> &Type {
        &self.item.self_ty
    }
}
