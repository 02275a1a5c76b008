//! Parsing `#[handle(...)]`'s arguments.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Path, Token};

const KEYS: &str =
    "`source`, `sink`, `pipe`, `name`, `on_error`, `dead_letter`, `retry`, `backoff_ms`, `crate`";

/// The error policy named by `on_error = ".."` or `dead_letter = ".."`.
pub enum Policy {
    Stop,
    Skip,
    DeadLetter(LitStr),
}

/// `retry = N` and `backoff_ms = N`.
pub struct RetryArgs {
    pub attempts: syn::LitInt,
    pub backoff_ms: Option<syn::LitInt>,
}

/// `#[handle(...)]`'s arguments.
pub struct Args {
    pub sources: Vec<Expr>,
    pub sinks: Vec<Expr>,
    pub pipes: Vec<Expr>,
    pub name: Option<LitStr>,
    pub on_error: Option<Policy>,
    pub retry: Option<RetryArgs>,
    pub krate: Option<Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut sources: Option<Vec<Expr>> = None;
        let mut sinks = None;
        let mut pipes = None;
        let mut name = None;
        let mut on_error = None;
        let mut retry: Option<syn::LitInt> = None;
        let mut backoff: Option<syn::LitInt> = None;
        let mut krate = None;

        while !input.is_empty() {
            let key = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            let repeated = || syn::Error::new_spanned(&key, format!("`{key}` is given twice"));
            match key.to_string().as_str() {
                "source" => {
                    if sources.is_some() {
                        return Err(repeated());
                    }
                    sources = Some(match input.parse::<Expr>()? {
                        Expr::Array(list) => {
                            if list.elems.is_empty() {
                                return Err(syn::Error::new_spanned(
                                    list,
                                    "`source = []` names no source; give at least one stream",
                                ));
                            }
                            list.elems.into_iter().collect()
                        }
                        single => vec![single],
                    });
                }
                "sink" => {
                    if sinks.is_some() {
                        return Err(repeated());
                    }
                    sinks = Some(list(input.parse()?, "sink", "sink = [print]")?);
                }
                "pipe" => {
                    if pipes.is_some() {
                        return Err(repeated());
                    }
                    pipes = Some(list(input.parse()?, "pipe", "pipe = [pairwise]")?);
                }
                "name" => {
                    if name.is_some() {
                        return Err(repeated());
                    }
                    let lit: LitStr = input.parse()?;
                    if lit.value().trim().is_empty() {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "a handler's name cannot be empty",
                        ));
                    }
                    name = Some(lit);
                }
                "on_error" | "dead_letter" if on_error.is_some() => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        "the error policy is given twice: use one of `on_error = \"stop\"`, `on_error = \"skip\"` or `dead_letter = \"topic\"`",
                    ));
                }
                "on_error" => {
                    let lit: LitStr = input.parse()?;
                    on_error = Some(match lit.value().as_str() {
                        "stop" => Policy::Stop,
                        "skip" => Policy::Skip,
                        other => {
                            return Err(syn::Error::new_spanned(
                                lit,
                                format!(
                                    "unknown error policy `{other}`; expected \"stop\" or \"skip\" (or `dead_letter = \"topic\"` instead of `on_error`)"
                                ),
                            ));
                        }
                    });
                }
                "dead_letter" => {
                    let lit: LitStr = input.parse()?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "`dead_letter` names the topic failed items go to; it cannot be empty",
                        ));
                    }
                    on_error = Some(Policy::DeadLetter(lit));
                }
                "retry" | "backoff_ms" => {
                    let slot = if key == "retry" {
                        &mut retry
                    } else {
                        &mut backoff
                    };
                    if slot.is_some() {
                        return Err(repeated());
                    }
                    let lit: syn::LitInt = input.parse()?;
                    if lit.base10_parse::<u32>().is_err() {
                        return Err(syn::Error::new_spanned(
                            lit,
                            format!("`{key}` takes a whole number from 0 to {}", u32::MAX),
                        ));
                    }
                    *slot = Some(lit);
                }
                "crate" => {
                    if krate.is_some() {
                        return Err(repeated());
                    }
                    krate = Some(if input.peek(LitStr) {
                        input.parse::<LitStr>()?.parse()?
                    } else {
                        input.parse::<Path>()?
                    });
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!("unknown argument `{key}`; expected one of {KEYS}"),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }

        let Some(sources) = sources else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `source`: name the stream that feeds this handler, e.g. `#[handle(source = numbers(), sink = [print])]`",
            ));
        };
        let retry = match (retry, backoff) {
            (Some(attempts), backoff_ms) => Some(RetryArgs {
                attempts,
                backoff_ms,
            }),
            (None, Some(backoff)) => {
                return Err(syn::Error::new_spanned(
                    backoff,
                    "`backoff_ms` is the wait between retries: give `retry = N` too",
                ));
            }
            (None, None) => None,
        };
        Ok(Args {
            sources,
            sinks: sinks.unwrap_or_default(),
            pipes: pipes.unwrap_or_default(),
            name,
            on_error,
            retry,
            krate,
        })
    }
}

/// A `[a, b, ..]` argument.
fn list(expr: Expr, key: &str, example: &str) -> syn::Result<Vec<Expr>> {
    match expr {
        Expr::Array(list) => Ok(list.elems.into_iter().collect()),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` takes a list: write `{key} = [..]`, e.g. `{example}`"),
        )),
    }
}
