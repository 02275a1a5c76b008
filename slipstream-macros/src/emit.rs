//! The `emit!` rewrite: every `emit!(value)` in a handler's body becomes a send to the
//! handler's outputs (as `async-stream` does for `yield` inside `stream!`).

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::parse::Parser;
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
        let tokens = self.rewrite(mac.tokens.clone(), mac);
        Some(syn::parse2(tokens).expect("the rewrite of emit! is an expression"))
    }

    /// What one `emit!(args)` becomes; `at` locates errors.
    fn rewrite(&mut self, args: TokenStream, at: &dyn ToTokens) -> TokenStream {
        self.count += 1;
        let value = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args) {
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
                    at,
                    "`emit!` takes the value to send, e.g. `emit!(n * 2)`",
                ));
                quote!(())
            }
            Err(error) => {
                self.errors.push(error);
                quote!(())
            }
        };
        match &self.mode {
            Mode::Queue => quote!(__slipstream_out.push(#value)),
            Mode::Send(krate) => {
                quote!(#krate::__private::emit(&__slipstream_emitter, #value).await)
            }
            Mode::Discard => quote!({ let _ = #value; }),
        }
    }

    /// Rewrites `emit!(..)` inside the tokens of another macro (`tokio::select!`, `vec!`, ..),
    /// which `syn` does not parse.
    fn rewrite_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let mut out = Vec::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tree) = iter.next() {
            match tree {
                TokenTree::Ident(ident) if ident == "emit" => {
                    let bang =
                        matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == '!');
                    if !bang {
                        out.push(TokenTree::Ident(ident));
                        continue;
                    }
                    let bang = iter.next().expect("peeked");
                    match iter.next() {
                        Some(TokenTree::Group(args)) => {
                            let at = quote!(#ident #bang #args);
                            let rewritten = self.rewrite(args.stream(), &at);
                            let mut group = Group::new(Delimiter::None, rewritten);
                            group.set_span(args.span());
                            out.push(TokenTree::Group(group));
                        }
                        other => {
                            out.push(TokenTree::Ident(ident));
                            out.push(bang);
                            out.extend(other);
                        }
                    }
                }
                TokenTree::Group(group) => {
                    let mut rewritten =
                        Group::new(group.delimiter(), self.rewrite_tokens(group.stream()));
                    rewritten.set_span(group.span());
                    out.push(TokenTree::Group(rewritten));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
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

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = self.rewrite_tokens(std::mem::take(&mut mac.tokens));
    }

    // `emit!` in a nested item belongs to that item, not to the handler.
    fn visit_item_mut(&mut self, _item: &mut syn::Item) {}
}
