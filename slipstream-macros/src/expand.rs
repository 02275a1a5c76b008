//! Code generation for `#[handle]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

use crate::args::{Args, Policy, RetryArgs};
use crate::emit::{Mode, Rewrite};
use crate::text::text;

/// What a handler returns, read from its signature.
enum Output {
    /// `()` (or no return type): nothing to send.
    Unit,
    /// `Result<(), E>`: nothing to send, errors to the error policy.
    UnitResult,
    /// `Option<T>`: zero or one value.
    Option,
    /// `Result<T, E>`: `Ok` values are sent, errors go to the error policy.
    Result,
    /// `Result<Option<T>, E>`: `Ok(Some(..))` values are sent, errors go to the error policy.
    ResultOption,
    /// Any other `T`: one value.
    Value,
}

/// The kind of output and, when the signature names it, the type of each value sent.
fn output_kind(ret: &ReturnType) -> (Output, Option<Type>) {
    let ReturnType::Type(_, ty) = ret else {
        return (Output::Unit, None);
    };
    let named = |ty: &Type| (!contains_impl_trait(ty)).then(|| ty.clone());
    match &**ty {
        Type::Tuple(t) if t.elems.is_empty() => (Output::Unit, None),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().expect("a path has a segment");
            let first_arg = match &last.arguments {
                PathArguments::AngleBracketed(args) => args.args.first(),
                _ => None,
            };
            let first_ty = match first_arg {
                Some(GenericArgument::Type(ty)) => Some(ty),
                _ => None,
            };
            let unit_arg = matches!(first_ty, Some(Type::Tuple(t)) if t.elems.is_empty());
            match (last.ident.to_string().as_str(), first_ty) {
                ("Option", Some(inner)) => (Output::Option, named(inner)),
                ("Result", Some(_)) if unit_arg => (Output::UnitResult, None),
                ("Result", Some(inner)) => match option_of(inner) {
                    Some(value) => (Output::ResultOption, named(value)),
                    None => (Output::Result, named(inner)),
                },
                _ => (Output::Value, named(ty)),
            }
        }
        other => (Output::Value, named(other)),
    }
}

/// `T` when `ty` is `Option<T>`.
fn option_of(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => match args.args.first()? {
            GenericArgument::Type(inner) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a type mentions `impl Trait` (which cannot be named where the output type goes).
fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// A `source`/`sink` expression. A bare path in `SCREAMING_CASE` names a `static` shared
/// handle (a proxy, a shared stream, a `LazyLock` of one), which cannot be moved out of, so it
/// is taken by reference; anything else (a call, a closure, a function or unit struct named by
/// its path, an explicit `&HANDLE`) is taken by value.
fn by_ref_if_static(expr: &Expr) -> TokenStream {
    match expr {
        Expr::Path(p) if p.qself.is_none() && is_static_name(&p.path) => {
            quote_spanned!(expr.span()=> &#expr)
        }
        _ => quote!(#expr),
    }
}

fn is_static_name(path: &syn::Path) -> bool {
    let name = path
        .segments
        .last()
        .expect("a path has a segment")
        .ident
        .to_string();
    name.chars().any(|c| c.is_ascii_uppercase()) && !name.chars().any(|c| c.is_lowercase())
}

pub fn handle(args: Args, mut item: ItemFn) -> syn::Result<TokenStream> {
    let krate = args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::slipstream));
    let sig = &item.sig;

    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            "`#[handle]` goes on a free function, not a method",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a handler cannot be generic: its input and output types must be concrete",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "a handler cannot be variadic",
        ));
    }
    let param = match sig.inputs.len() {
        0 => None,
        1 => match &sig.inputs[0] {
            FnArg::Typed(param) => Some(param.clone()),
            FnArg::Receiver(_) => unreachable!("a receiver is rejected above"),
        },
        _ => {
            return Err(syn::Error::new_spanned(
                &sig.inputs[1],
                "a handler takes at most one parameter: the item of its source (combine values in a tuple or struct)",
            ));
        }
    };
    let is_async = sig.asyncness.is_some();

    // Rewrite `emit!` in the body; a body that uses it is generator style.
    let mut rewrite = Rewrite::new(if is_async {
        Mode::Send(&krate)
    } else {
        Mode::Queue
    });
    let mut body = item.block.clone();
    rewrite.visit_block_mut(&mut body);
    if let Some(error) = rewrite.errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        return Err(error);
    }
    let generator = rewrite.count > 0;
    let (output, output_ty) = output_kind(&sig.output);
    if generator && !matches!(output, Output::Unit | Output::UnitResult) {
        return Err(syn::Error::new_spanned(
            &sig.output,
            "a handler that uses `emit!` sends its outputs with it: return `()` or `Result<(), E>`",
        ));
    }

    let fn_name = &sig.ident;
    let name = args
        .name
        .as_ref()
        .map_or_else(|| fn_name.to_string(), |lit| lit.value());
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };

    // The sources, merged when there are several, then the pipes.
    let cx = format_ident!("__slipstream_cx");
    let source = if let [single] = args.sources.as_slice() {
        let value = by_ref_if_static(single);
        quote_spanned!(single.span()=> #krate::__private::source(#cx, #value)?)
    } else {
        let each = args.sources.iter().map(|s| {
            let value = by_ref_if_static(s);
            quote_spanned!(s.span()=> #krate::__private::boxed(#krate::__private::source(#cx, #value)?))
        });
        quote!(#krate::__private::merge(::std::vec![#(#each),*]))
    };
    let pipes = args.pipes.iter().map(|stage| {
        quote_spanned!(stage.span()=> let __slipstream_source = #krate::__private::pipe(#cx, __slipstream_source, #stage);)
    });
    let sinks = args.sinks.iter().map(|sink| {
        let value = by_ref_if_static(sink);
        quote_spanned!(sink.span()=> .add(#cx, #value)?)
    });

    // The type of the values sent, when the signature says it: sinks are checked against it
    // (so a mismatch is reported on the sink), and a handler without outputs sends `()`.
    let out_ty = match (&output, &output_ty) {
        _ if generator => quote!(_),
        (Output::Unit | Output::UnitResult, _) => quote!(()),
        (_, Some(ty)) => quote!(#ty),
        (_, None) => quote!(_),
    };

    // The step: what the runtime calls for each item.
    let input = match &param {
        Some(p) => {
            let (pat, ty) = (&p.pat, &p.ty);
            quote!(#pat: #ty)
        }
        None => quote!(__slipstream_in),
    };
    let call_arg = if param.is_some() {
        quote!(__slipstream_in)
    } else {
        quote!()
    };
    let call = quote!(#fn_name(#call_arg));
    let step = if generator {
        let check = quote!(#krate::__private::GenReturn::into_result);
        if is_async {
            quote! {
                move |#input, __slipstream_emitter: #krate::__private::Emitter<_, _>| async move {
                    #check(#krate::__private::returning::<#ret, _>(async move #body).await)
                }
            }
        } else {
            quote! {
                move |#input, __slipstream_out: &mut #krate::__private::Outbox<_>|
                    -> ::core::result::Result<(), #krate::BoxError> {
                    #check((move || -> #ret #body)())
                }
            }
        }
    } else if is_async {
        let result = match output {
            Output::Unit => {
                quote! { #call.await; ::core::result::Result::Ok(::core::option::Option::None::<()>) }
            }
            Output::UnitResult => quote! {
                match #call.await {
                    ::core::result::Result::Ok(()) => ::core::result::Result::Ok(::core::option::Option::None::<()>),
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(#krate::__private::handler_error(e)),
                }
            },
            Output::Option => quote! { ::core::result::Result::Ok(#call.await) },
            Output::Result => quote! {
                match #call.await {
                    ::core::result::Result::Ok(v) => ::core::result::Result::Ok(::core::option::Option::Some(v)),
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(#krate::__private::handler_error(e)),
                }
            },
            Output::Value => {
                quote! { ::core::result::Result::Ok(::core::option::Option::Some(#call.await)) }
            }
            Output::ResultOption => {
                quote! { #call.await.map_err(#krate::__private::handler_error) }
            }
        };
        quote!(move |__slipstream_in| async move { #result })
    } else {
        let result = match output {
            Output::Unit => quote! { #call; ::core::result::Result::Ok(()) },
            Output::UnitResult => quote! { #call.map_err(#krate::__private::handler_error) },
            Output::Option => quote! {
                if let ::core::option::Option::Some(v) = #call {
                    __slipstream_out.push(v);
                }
                ::core::result::Result::Ok(())
            },
            Output::Result => quote! {
                match #call {
                    ::core::result::Result::Ok(v) => {
                        __slipstream_out.push(v);
                        ::core::result::Result::Ok(())
                    }
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(#krate::__private::handler_error(e)),
                }
            },
            Output::Value => {
                quote! { __slipstream_out.push(#call); ::core::result::Result::Ok(()) }
            }
            Output::ResultOption => quote! {
                match #call {
                    ::core::result::Result::Ok(v) => {
                        if let ::core::option::Option::Some(v) = v {
                            __slipstream_out.push(v);
                        }
                        ::core::result::Result::Ok(())
                    }
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(#krate::__private::handler_error(e)),
                }
            },
        };
        quote! {
            move |__slipstream_in, __slipstream_out: &mut #krate::__private::Outbox<_>|
                -> ::core::result::Result<(), #krate::BoxError> { #result }
        }
    };
    let drive = match (is_async, generator) {
        (false, _) => quote!(drive_sync),
        (true, false) => quote!(drive_async),
        (true, true) => quote!(drive_async_gen),
    };

    let source_texts = args.sources.iter().map(text);
    let sink_texts = args.sinks.iter().map(text);
    let on_error = match &args.on_error {
        None => quote!(::core::option::Option::None),
        Some(Policy::Stop) => quote!(::core::option::Option::Some(#krate::OnError::Stop)),
        Some(Policy::Skip) => quote!(::core::option::Option::Some(#krate::OnError::Skip)),
        Some(Policy::DeadLetter(topic)) => {
            quote!(::core::option::Option::Some(#krate::OnError::DeadLetter(#topic)))
        }
    };
    let retry = match &args.retry {
        None => quote!(::core::option::Option::None),
        Some(RetryArgs {
            attempts,
            backoff_ms,
        }) => {
            let backoff = backoff_ms
                .as_ref()
                .map_or_else(|| quote!(100), |ms| quote!(#ms));
            quote!(::core::option::Option::Some(#krate::Retry::new(
                #attempts,
                ::core::time::Duration::from_millis(#backoff),
            )))
        }
    };

    // `#[cfg]` on the handler applies to its registration too; lint attributes apply to the
    // generated code that holds a generator's body.
    let cfgs = item.attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let lints = item.attrs.iter().filter(|a| {
        generator
            && ["allow", "expect", "warn", "deny", "forbid"]
                .iter()
                .any(|lint| a.path().is_ident(lint))
    });
    let registration = quote! {
        #(#cfgs)*
        #[doc(hidden)]
        const _: () = {
            #(#lints)*
            #[allow(unused_variables, unused_mut, clippy::let_unit_value, clippy::unit_arg, clippy::redundant_closure_call)]
            fn __slipstream_build(
                #cx: &mut #krate::__private::BuildCx<'_>,
            ) -> ::core::result::Result<(), #krate::Error> {
                let __slipstream_source = #source;
                #(#pipes)*
                let __slipstream_step = #step;
                let __slipstream_sinks = #krate::__private::Sinks::<#out_ty, _>::new()
                    #(#sinks)*;
                // Whether the input can be cloned, for retries (autoref specialization).
                let __slipstream_cloner = {
                    #[allow(unused_imports)]
                    use #krate::__private::{CanClone as _, CannotClone as _};
                    (&#krate::__private::clone_probe(&__slipstream_source)).cloner()
                };
                #krate::__private::#drive(#cx, __slipstream_source, __slipstream_sinks, __slipstream_step, __slipstream_cloner);
                ::core::result::Result::Ok(())
            }
            #krate::__private::inventory::submit! {
                #krate::__private::HandlerInfo {
                    name: #name,
                    module: ::core::module_path!(),
                    sources: &[#(#source_texts),*],
                    sinks: &[#(#sink_texts),*],
                    on_error: #on_error,
                    retry: #retry,
                    build: __slipstream_build,
                }
            }
        };
    };

    // A plain handler stays an ordinary function (callable and testable on its own); a
    // generator-style one lives on only inside its registration.
    if generator {
        Ok(registration)
    } else {
        item.attrs.push(syn::parse_quote!(#[allow(dead_code)]));
        Ok(quote!(#item #registration))
    }
}

/// The item as written, with `emit!` calls neutralised: emitted next to a macro error so that
/// one mistake gives one error.
pub fn fallback(mut item: ItemFn) -> TokenStream {
    Rewrite::new(Mode::Discard).visit_block_mut(&mut item.block);
    item.attrs
        .push(syn::parse_quote!(#[allow(dead_code, unused)]));
    quote!(#item)
}
