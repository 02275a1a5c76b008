//! Procedural macros of [slipstream](https://docs.rs/slipstream): `#[handle]`. Use them through
//! the `slipstream` crate.

mod args;
mod emit;
mod expand;
mod text;

use proc_macro::TokenStream;

/// Registers a function as a slipstream handler. See the `slipstream` crate's documentation.
#[proc_macro_attribute]
pub fn handle(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[handle]` goes on a function: `#[handle(source = ..)] fn name(item: T) { .. }`",
            );
            let mut out: TokenStream = error.to_compile_error().into();
            out.extend(item);
            return out;
        }
    };
    let result = syn::parse::<args::Args>(attr).and_then(|args| expand::handle(args, item.clone()));
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(expand::fallback(item));
            out.into()
        }
    }
}
