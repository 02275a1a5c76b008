//! The text of a `source`/`sink` expression for `slipstream::handlers()`, spaced as people
//! write Rust (stable proc macros cannot read the source text of a multi-token span).

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;

pub fn text(expr: &impl ToTokens) -> String {
    let mut out = String::new();
    write(expr.to_token_stream(), &mut out);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Prev {
    Start,
    Word,
    /// A punctuation character; `spaced` when a space must follow it.
    Punct {
        spaced: bool,
        joint: bool,
    },
    Group,
}

fn write(tokens: TokenStream, out: &mut String) {
    let mut prev = Prev::Start;
    let mut in_closure_params = false;
    let mut last_ch = None;
    for token in tokens {
        match token {
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                let space = match prev {
                    Prev::Word | Prev::Group => true,
                    Prev::Punct { spaced, .. } => spaced,
                    Prev::Start => false,
                };
                if space {
                    out.push(' ');
                }
                out.push_str(&token.to_string());
                prev = Prev::Word;
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                let space = match prev {
                    Prev::Punct { spaced, .. } => spaced,
                    Prev::Word => group.delimiter() == Delimiter::Brace,
                    Prev::Group => group.delimiter() == Delimiter::Brace,
                    Prev::Start => false,
                };
                if space {
                    out.push(' ');
                }
                out.push_str(open);
                write(group.stream(), out);
                out.push_str(close);
                prev = Prev::Group;
            }
            TokenTree::Punct(punct) => {
                let ch = punct.as_char();
                let joint = punct.spacing() == Spacing::Joint;
                let after_joint = matches!(prev, Prev::Punct { joint: true, .. });
                let binary = matches!(ch, '=' | '+' | '*' | '/' | '%' | '<' | '>')
                    || (ch == '-' && matches!(prev, Prev::Word | Prev::Group));
                let spaced_before = match prev {
                    Prev::Punct { spaced, .. } if spaced => true,
                    Prev::Word | Prev::Group => binary && !after_joint,
                    _ => false,
                };
                if spaced_before && !after_joint {
                    out.push(' ');
                }
                out.push(ch);
                let previous_ch = last_ch.replace(ch);
                let spaced = if joint {
                    false
                } else {
                    match ch {
                        ',' | ';' => true,
                        ':' => previous_ch != Some(':') || !after_joint,
                        '|' => {
                            let closing = in_closure_params;
                            in_closure_params = !in_closure_params;
                            closing
                        }
                        _ => binary,
                    }
                };
                prev = Prev::Punct { spaced, joint };
            }
        }
        last_ch = match &prev {
            Prev::Punct { .. } => last_ch,
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::text;

    fn of(src: &str) -> String {
        text(&syn::parse_str::<syn::Expr>(src).unwrap())
    }

    #[test]
    fn spaces_expressions_as_written() {
        for src in [
            "stream::iter([1u8])",
            "messages()",
            "timer(Duration::from_secs(1))",
            "|_: u8| ()",
            "|s: String| OUT.push(s)",
            "print",
            "&PROXY",
            "stream::iter(0..100u32)",
            "vec![1, 2, 3]",
            "async move { x }",
            "a + b",
            "f(-1)",
        ] {
            assert_eq!(of(src), src);
        }
    }
}
