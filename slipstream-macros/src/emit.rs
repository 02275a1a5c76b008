//! The `emit!` rewrite: every `emit!(value)` in a handler's body becomes a send to the
//! handler's outputs (as `async-stream` does for `yield` inside `stream!`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Macro, Stmt, Token};

/// What `emit!(value)` turns into.
pub enum Mode<'a> {
    /// Sync handler: queue the value (`__slipstream_out.push(value)`).
    Queue,
    /// Async handler: send it and wait (`emit(&__slipstream_emitter, value).await`).
    Send(&'a syn::Path),
    /// The macro failed: keep the body compiling without more errors.
    Discard,
}

/// Rewrites `emit!` calls; counts them and collects malformed ones.
pub struct Rewrite<'a> {
    mode: Mode<'a>,
    pub count: usize,
    pub errors: Vec<syn::Error>,
}

impl<'a> Rewrite<'a> {
    pub fn new(mode: Mode<'a>) -> Self {
        Rewrite {
            mode,
            count: 0,
            errors: Vec::new(),
        }
    }

    fn replacement(&mut self, mac: &Macro) -> Option<Expr> {
        if mac.path.segments.last().is_none_or(|s| s.ident != "emit") {
            return None;
        }
        self.count += 1;
        let value = match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(values) if values.len() == 1 => {
                let value = &values[0];
                quote!(#value)
            }
            // `emit!(key, value)` emits the pair `(key, value)`.
            Ok(values) if !values.is_empty() => {
                let values = values.iter();
                quote!((#(#values),*))
            }
            Ok(_) => {
                self.errors.push(syn::Error::new_spanned(
                    mac,
                    "`emit!` takes the value to send, e.g. `emit!(n * 2)`",
                ));
                quote!(())
            }
            Err(error) => {
                self.errors.push(error);
                quote!(())
            }
        };
        let tokens: TokenStream = match &self.mode {
            Mode::Queue => quote!(__slipstream_out.push(#value)),
            Mode::Send(krate) => {
                quote!(#krate::__private::emit(&__slipstream_emitter, #value).await)
            }
            Mode::Discard => quote!({ let _ = #value; }),
        };
        Some(syn::parse2(tokens).expect("the rewrite of emit! is an expression"))
    }
}

impl VisitMut for Rewrite<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Macro(mac) = expr
            && let Some(replacement) = self.replacement(&mac.mac)
        {
            *expr = replacement;
            return;
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(mac) = stmt
            && let Some(replacement) = self.replacement(&mac.mac)
        {
            *stmt = Stmt::Expr(replacement, Some(mac.semi_token.unwrap_or_default()));
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    // `emit!` in a nested item belongs to that item, not to the handler.
    fn visit_item_mut(&mut self, _item: &mut syn::Item) {}
}
