//! The bracketed parts of a query: tag sets, numeric ranges and KNN.

use super::{Bound, Knn, Node, Parser, QueryError, TagMatch};
use crate::limits::KNN_K_MAX;

impl Parser<'_> {
    /// `{a | b c | pre*}`: tags split at unescaped `|`, trimmed; a tag
    /// that is exactly `$name` is a parameter; an unescaped `*` at the end
    /// makes a prefix.
    pub(super) fn tags(&mut self, field: &str) -> Result<Node, QueryError> {
        self.bump();
        let mut tags = Vec::new();
        // Each character with whether it was escaped.
        let mut current: Vec<(char, bool)> = Vec::new();
        loop {
            // Unterminated: RediSearch fails at the end of the input.
            let Some(c) = self.bump() else {
                return Err(self.syntax());
            };
            match c {
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(self.syntax());
                    };
                    current.push((e, true));
                }
                '|' | '}' => {
                    tags.push(self.tag(std::mem::take(&mut current))?);
                    if c == '}' {
                        break;
                    }
                }
                other => current.push((other, false)),
            }
        }
        self.node(Node::Tags {
            field: field.to_string(),
            tags,
        })
    }

    fn tag(&mut self, mut chars: Vec<(char, bool)>) -> Result<TagMatch, QueryError> {
        let blank = |&(c, escaped): &(char, bool)| !escaped && c.is_whitespace();
        while chars.last().is_some_and(blank) {
            chars.pop();
        }
        let lead = chars.iter().take_while(|c| blank(c)).count();
        chars.drain(..lead);
        let prefix = chars.last() == Some(&('*', false));
        if prefix {
            chars.pop();
        }
        let text: String = chars.iter().map(|(c, _)| *c).collect();
        let is_param =
            !prefix && chars.len() > 1 && chars.iter().all(|(_, e)| !e) && chars[0].0 == '$';
        let tag = if is_param {
            self.params.text(&text[1..])?.trim().to_string()
        } else {
            text
        };
        if tag.is_empty() {
            return Err(self.syntax());
        }
        self.node(Node::All)?; // counts toward the node limit
        Ok(TagMatch { tag, prefix })
    }

    /// `[lo hi]`: bounds separated by spaces or a comma; `(` before a
    /// bound excludes it; `-inf`, `inf`, `+inf`; `$name`.
    pub(super) fn range(&mut self, field: &str) -> Result<Node, QueryError> {
        self.bump();
        let lo = self.bound()?;
        self.skip_ws();
        self.eat(',');
        let hi = self.bound()?;
        self.skip_ws();
        if !self.eat(']') {
            return Err(self.syntax());
        }
        self.node(Node::Range {
            field: field.to_string(),
            lo,
            hi,
        })
    }

    fn bound(&mut self) -> Result<Bound, QueryError> {
        self.skip_ws();
        let inclusive = !self.eat('(');
        let at = self.pos;
        let value = if self.eat('$') {
            let name = self.param_name()?;
            let text = self.params.text(&name)?;
            parse_bound(text).ok_or_else(|| QueryError::BadNumericParameter {
                value: crate::echo(text.as_bytes()),
                name,
            })?
        } else {
            while self
                .peek()
                .is_some_and(|c| !c.is_whitespace() && !matches!(c, ']' | ',' | '(' | '['))
            {
                self.bump();
            }
            let text = &self.src[at..self.pos];
            parse_bound(text).ok_or_else(|| {
                self.pos = at;
                self.syntax()
            })?
        };
        Ok(Bound { value, inclusive })
    }

    /// `[KNN k @field $param [AS name]]`, after `=>`.
    pub(super) fn knn(&mut self) -> Result<Knn, QueryError> {
        self.skip_ws();
        if !self.eat('[') {
            return Err(self.syntax());
        }
        self.skip_ws();
        let at = self.pos;
        let word = self.word()?;
        if !word.eq_ignore_ascii_case("KNN") {
            self.pos = at;
            return Err(self.syntax());
        }
        self.skip_ws();
        let k = self.knn_k()?;
        self.skip_ws();
        if !self.eat('@') {
            return Err(self.syntax());
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !super::is_special(c))
        {
            self.bump();
        }
        let field = self.src[start..self.pos].to_string();
        self.skip_ws();
        if field.is_empty() || !self.eat('$') {
            return Err(self.syntax());
        }
        let param = self.param_name()?;
        let vector = self.params.get(&param)?.to_vec();
        let score_name = self
            .knn_alias()?
            .unwrap_or_else(|| format!("__{field}_score"));
        self.skip_ws();
        if !self.eat(']') {
            return Err(self.syntax());
        }
        Ok(Knn {
            k,
            field,
            vector,
            param,
            score_name,
        })
    }

    fn knn_k(&mut self) -> Result<usize, QueryError> {
        let k = if self.eat('$') {
            let name = self.param_name()?;
            let text = self.params.text(&name)?;
            text.parse::<usize>()
                .map_err(|_| QueryError::BadNumericParameter {
                    value: crate::echo(text.as_bytes()),
                    name,
                })?
        } else {
            let at = self.pos;
            let word = self.word()?;
            word.parse::<usize>().map_err(|_| {
                self.pos = at;
                self.syntax()
            })?
        };
        if k > KNN_K_MAX {
            return Err(QueryError::KnnTooLarge(KNN_K_MAX));
        }
        Ok(k)
    }

    fn knn_alias(&mut self) -> Result<Option<String>, QueryError> {
        self.skip_ws();
        let at = self.pos;
        if matches!(self.peek(), Some(']') | None) {
            return Ok(None);
        }
        let word = self.word()?;
        if !word.eq_ignore_ascii_case("AS") {
            self.pos = at;
            return Err(self.syntax());
        }
        self.skip_ws();
        Ok(Some(self.word()?))
    }
}

fn parse_bound(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "-inf" => Some(f64::NEG_INFINITY),
        "inf" | "+inf" => Some(f64::INFINITY),
        t if t.contains("inf") || t.contains("nan") => None,
        t => t.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}
