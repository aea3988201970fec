//! Queries back to text: a canonical form that parses to the same tree
//! (the parser's property tests check it), for logs and error messages.

use std::fmt::{self, Display, Formatter, Write};

use super::{Bound, Node, Query, is_special};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)?;
        if let Some(k) = &self.knn {
            write!(f, "=>[KNN {} @{} ${} AS ", k.k, k.field, k.param)?;
            word(f, &k.score_name)?;
            f.write_char(']')?;
        }
        Ok(())
    }
}

impl Display for Node {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Node::All => f.write_char('*'),
            Node::Term { field, word: w } => {
                scope(f, field.as_deref())?;
                word(f, w)
            }
            Node::Prefix { field, prefix } => {
                scope(f, field.as_deref())?;
                word(f, prefix)?;
                f.write_char('*')
            }
            Node::Phrase { field, text } => {
                scope(f, field.as_deref())?;
                f.write_char('"')?;
                for c in text.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_char('\\')?;
                    }
                    f.write_char(c)?;
                }
                f.write_char('"')
            }
            Node::Tags { field, tags } => {
                write!(f, "@{field}:{{")?;
                for (i, t) in tags.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    let last = t.tag.chars().count().saturating_sub(1);
                    for (j, c) in t.tag.chars().enumerate() {
                        // Unescaped white space at either end is trimmed.
                        let edge = (j == 0 || j == last) && c.is_whitespace();
                        if matches!(c, '|' | '}' | '\\' | '*') || (j == 0 && c == '$') || edge {
                            f.write_char('\\')?;
                        }
                        f.write_char(c)?;
                    }
                    if t.prefix {
                        f.write_char('*')?;
                    }
                }
                f.write_char('}')
            }
            Node::Range { field, lo, hi } => {
                write!(f, "@{field}:[")?;
                bound(f, *lo)?;
                f.write_char(' ')?;
                bound(f, *hi)?;
                f.write_char(']')
            }
            Node::Not(inner) => {
                f.write_char('-')?;
                grouped(f, inner, true)
            }
            Node::And(children) => list(f, children, " ", true),
            Node::Or(children) => list(f, children, " | ", false),
        }
    }
}

fn scope(f: &mut Formatter<'_>, field: Option<&str>) -> fmt::Result {
    match field {
        Some(name) => write!(f, "@{name}:"),
        None => Ok(()),
    }
}

fn word(f: &mut Formatter<'_>, w: &str) -> fmt::Result {
    for (i, c) in w.chars().enumerate() {
        if c.is_whitespace() || is_special(c) || c == '\\' || (i == 0 && c == '-') {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    Ok(())
}

fn bound(f: &mut Formatter<'_>, b: Bound) -> fmt::Result {
    if !b.inclusive {
        f.write_char('(')?;
    }
    if b.value == f64::INFINITY {
        f.write_str("+inf")
    } else if b.value == f64::NEG_INFINITY {
        f.write_str("-inf")
    } else {
        write!(f, "{:?}", b.value)
    }
}

/// A child in parentheses when it is an operator (any AND or OR under an
/// AND or a NOT; an OR under an OR).
fn grouped(f: &mut Formatter<'_>, n: &Node, under_and: bool) -> fmt::Result {
    let wrap = matches!(n, Node::Or(_))
        || (under_and && matches!(n, Node::And(_)))
        || (!under_and && matches!(n, Node::And(_) | Node::Or(_)));
    if wrap {
        write!(f, "({n})")
    } else {
        write!(f, "{n}")
    }
}

fn list(f: &mut Formatter<'_>, children: &[Node], sep: &str, under_and: bool) -> fmt::Result {
    for (i, c) in children.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        grouped(f, c, under_and)?;
    }
    Ok(())
}
