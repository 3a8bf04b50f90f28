//! The checks behind every `#[skprocess]` compile error.

use syn::{FnArg, GenericArgument, ImplItemFn, ItemImpl, PathArguments, ReceiverKind, Type};

use super::ast::{Hook, HookKind, ProcessImpl, Returns};

/// Hook names long enough that a dropped or swapped letter is surely a typo, not a helper.
/// (A longer name such as `results` is left alone: helpers often extend a hook's name.)
const TYPO_PRONE: [HookKind; 4] = [
    HookKind::Prerun,
    HookKind::Postrun,
    HookKind::Onfinish,
    HookKind::Result,
];

/// Checks the block itself: an inherent impl of a non-generic type.
pub(crate) fn impl_block(item: &ItemImpl, errors: &mut Vec<syn::Error>) {
    if let Some((path, _)) = &item.trait_ {
        errors.push(syn::Error::new_spanned(
            path,
            "`#[skprocess]` must be placed on an inherent `impl` block, not a trait impl",
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "`#[skprocess]` does not support generic process types yet",
        ));
    }
}

/// Every process needs `run`.
pub(crate) fn required_hooks(model: &ProcessImpl, errors: &mut Vec<syn::Error>) {
    let has_run = model.item.items.iter().any(|item| {
        matches!(item, syn::ImplItem::Fn(method) if intended_hook(&method.sig.ident.to_string()) == Some(HookKind::Run))
    });
    if !has_run {
        errors.push(syn::Error::new_spanned(
            model.self_ty(),
            "missing `run` hook: a process needs `fn run(&mut self)`",
        ));
    }
}

/// Classifies a method: a valid hook, a helper (`None`), or a mistake (an error, `None`).
pub(crate) fn method(method: &ImplItemFn, errors: &mut Vec<syn::Error>) -> Option<Hook> {
    let ident = &method.sig.ident;
    let name = ident.to_string();
    let Some(kind) = HookKind::from_name(&name) else {
        if let Some(error) = misspelled_hook(ident, &name) {
            errors.push(error);
        }
        return None;
    };
    let before = errors.len();
    modifiers(method, kind, errors);
    receiver(method, errors);
    let takes_ctx = parameters(method, kind, errors);
    (errors.len() == before).then(|| Hook {
        kind,
        ident: ident.clone(),
        takes_ctx,
        returns: Returns::of(&method.sig.output),
    })
}

/// Python-style, differently cased or one-letter-off spellings of a hook name.
fn misspelled_hook(ident: &syn::Ident, name: &str) -> Option<syn::Error> {
    let intended = intended_hook(name)?;
    let message = if name.starts_with("__") && name.ends_with("__") {
        format!("`{name}` is spelled `{}` in skprocess", intended.name())
    } else {
        format!("unknown hook `{name}`; did you mean `{}`", intended.name())
    };
    Some(syn::Error::new(ident.span(), message))
}

/// The hook a method name means, whether spelled right or not; `None` for helpers.
fn intended_hook(name: &str) -> Option<HookKind> {
    let squashed = name.replace('_', "").to_lowercase();
    HookKind::from_name(&squashed).or_else(|| {
        TYPO_PRONE.into_iter().find(|kind| {
            squashed.len() <= kind.name().len() && edit_distance(kind.name(), &squashed) == 1
        })
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn modifiers(method: &ImplItemFn, kind: HookKind, errors: &mut Vec<syn::Error>) {
    let sig = &method.sig;
    if let Some(asyncness) = sig.asyncness {
        errors.push(syn::Error::new(asyncness.span, "hooks cannot be `async`"));
    }
    if let Some(constness) = sig.constness {
        errors.push(syn::Error::new(constness.span, "hooks cannot be `const`"));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "hooks cannot have generic parameters",
        ));
    }
    if let syn::Safety::Unsafe(token) = sig.safety {
        errors.push(syn::Error::new(
            token.span,
            format!("the `{}` hook cannot be `unsafe`", kind.name()),
        ));
    }
}

fn receiver(method: &ImplItemFn, errors: &mut Vec<syn::Error>) {
    let sig = &method.sig;
    let ok = sig.receiver().is_some_and(|r| {
        matches!(r.kind, ReceiverKind::Reference(_, _, Some(_))) && r.mutability.is_none()
    });
    if !ok {
        // Underline the whole receiver (`&self`, `mut self`), or the empty parentheses.
        let error = match sig.receiver() {
            Some(receiver) => syn::Error::new_spanned(receiver, "hooks take `&mut self`"),
            None => syn::Error::new(sig.paren_token.span.join(), "hooks take `&mut self`"),
        };
        errors.push(error);
    }
}

/// Checks the parameters after `self`; returns whether the hook takes the context.
fn parameters(method: &ImplItemFn, kind: HookKind, errors: &mut Vec<syn::Error>) -> bool {
    let typed: Vec<&syn::PatType> = method
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if kind == HookKind::Error {
        return error_hook_parameters(method, &typed, errors);
    }
    match typed.as_slice() {
        [] => false,
        [ctx] => {
            if !is_ctx(&ctx.ty) {
                errors.push(syn::Error::new_spanned(
                    &ctx.ty,
                    "expected `ctx: &mut Ctx<Self>`",
                ));
            }
            true
        }
        [_, extra, ..] => {
            errors.push(syn::Error::new_spanned(
                extra,
                "a hook takes at most one parameter besides `&mut self`: `ctx: &mut Ctx<Self>`",
            ));
            true
        }
    }
}

fn error_hook_parameters(
    method: &ImplItemFn,
    typed: &[&syn::PatType],
    errors: &mut Vec<syn::Error>,
) -> bool {
    const SHAPE: &str = "the `error` hook takes `&mut self`, an optional `ctx: &mut Ctx<Self>`, then `error: &Error`";
    match typed {
        [error] if is_error_ref(&error.ty) => false,
        [ctx, error] if is_ctx(&ctx.ty) && is_error_ref(&error.ty) => true,
        [] => {
            errors.push(syn::Error::new(method.sig.paren_token.span.join(), SHAPE));
            false
        }
        [.., last] => {
            errors.push(syn::Error::new_spanned(last, SHAPE));
            false
        }
    }
}

/// `&mut Ctx<Self>` (or `&mut Ctx<TheType>`, path-qualified or not).
fn is_ctx(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    reference.mutability.is_some()
        && last_segment_is(&reference.elem, "Ctx", |args| args.len() == 1)
}

/// `&Error` (path-qualified or not).
fn is_error_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_none() && last_segment_is(&r.elem, "Error", |args| args.is_empty()))
}

fn last_segment_is(ty: &Type, name: &str, args_ok: impl Fn(&[&GenericArgument]) -> bool) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(segment) = path.path.segments.last() else {
        return false;
    };
    let args: Vec<&GenericArgument> = match &segment.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        PathArguments::None => Vec::new(),
        PathArguments::Parenthesized(_) => return false,
    };
    segment.ident == name && args_ok(&args)
}
