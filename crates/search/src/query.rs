//! The query language: RediSearch's DIALECT 2, the subset issue 21 asks
//! for, parsed into a [`Query`] with limits on size, nesting and nodes.
//!
//! ```text
//! hello world            both words (AND binds tighter than OR)
//! hello | world          either
//! -hello                 not (one atom: `-hello world` is `(-hello) world`)
//! @title:hello           in one field (one atom: `@title:(a b)` for more)
//! @tag:{red | blue}      tags, exact (`{re*}`: prefix); spaces allowed inside
//! @n:[1 (5]              numeric range; `(` exclusive; -inf, +inf
//! "exact phrase"         words adjacent, in order, not stemmed
//! hel*                   terms starting with `hel` (at least 2 characters)
//! *                      every document
//! (a | b) c              grouping
//! $name                  a PARAMS value, as a word, tag or range bound
//! *=>[KNN 10 @vec $blob AS dist]       exact nearest neighbours
//! @tag:{x}=>[KNN $k @vec $blob]        nearest among the filter's documents
//! ```
//!
//! Words are kept as written; evaluation analyzes them with the index's
//! language (`crate::eval`). Parsing needs no definition, so the server
//! can refuse a malformed query before it reads anything.

use std::collections::BTreeMap;

use crate::limits::{
    QUERY_NESTING_LEVELS_MAX, QUERY_NODES_MAX, QUERY_PARAM_SIZE_BYTES_MAX, QUERY_PARAMS_MAX,
    QUERY_SIZE_BYTES_MAX,
};

/// Bytes of the `near ...` part of a syntax error.
const NEAR_SIZE_BYTES_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMatch {
    pub tag: String,
    pub prefix: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `*`: every document of the index.
    All,
    Term {
        field: Option<String>,
        word: String,
    },
    Prefix {
        field: Option<String>,
        prefix: String,
    },
    Phrase {
        field: Option<String>,
        text: String,
    },
    Tags {
        field: String,
        tags: Vec<TagMatch>,
    },
    Range {
        field: String,
        lo: Bound,
        hi: Bound,
    },
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Knn {
    pub k: usize,
    pub field: String,
    /// The query vector: the PARAMS value's bytes (FLOAT32 LE). For an
    /// `EMBED` field the server replaces the text with its embedding.
    pub vector: Vec<u8>,
    /// The PARAMS name the vector came from.
    pub param: String,
    /// `AS name`, else RediSearch's default `__<field>_score`.
    pub score_name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub root: Node,
    pub knn: Option<Knn>,
}

/// A refused query or PARAMS. Texts are RediSearch 2.10's where it has one
/// (`query_parser/v2/parser.y`, `param.c`, `query_param.c`); the server
/// sends them after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Syntax error at offset {offset} near {near}")]
    Syntax { offset: usize, near: String },
    #[error("No such parameter `{0}`")]
    NoSuchParameter(String),
    #[error("Invalid numeric value ({value}) for parameter `{name}`")]
    BadNumericParameter { value: String, name: String },
    #[error("Parameters must be specified in PARAM VALUE pairs")]
    ParamPairs,
    #[error("Duplicate parameter `{0}`")]
    DuplicateParameter(String),
    // Strata's own limits.
    #[error("Query is longer than {0} bytes")]
    TooLong(usize),
    #[error("Query is nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("Query has more than {0} terms and operators")]
    TooManyNodes(usize),
    #[error("More than {0} PARAMS")]
    TooManyParams(usize),
    #[error("A PARAMS value is longer than {0} bytes")]
    ParamTooLarge(usize),
    #[error("Query must be valid UTF-8")]
    NotUtf8,
    #[error("KNN k must be at most {0}")]
    KnnTooLarge(usize),
}

/// FT.SEARCH's `PARAMS`: names to bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, Vec<u8>>);

impl Params {
    /// From the `name value ...` arguments after `PARAMS n`.
    pub fn from_pairs(args: &[&[u8]]) -> Result<Params, QueryError> {
        if args.len() % 2 == 1 {
            return Err(QueryError::ParamPairs);
        }
        if args.len() / 2 > QUERY_PARAMS_MAX {
            return Err(QueryError::TooManyParams(QUERY_PARAMS_MAX));
        }
        let mut map = BTreeMap::new();
        for pair in args.chunks_exact(2) {
            let name = std::str::from_utf8(pair[0]).map_err(|_| QueryError::NotUtf8)?;
            if pair[1].len() > QUERY_PARAM_SIZE_BYTES_MAX {
                return Err(QueryError::ParamTooLarge(QUERY_PARAM_SIZE_BYTES_MAX));
            }
            if map.insert(name.to_string(), pair[1].to_vec()).is_some() {
                return Err(QueryError::DuplicateParameter(crate::echo(name.as_bytes())));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Result<&[u8], QueryError> {
        self.0
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| QueryError::NoSuchParameter(crate::echo(name.as_bytes())))
    }

    fn text(&self, name: &str) -> Result<&str, QueryError> {
        std::str::from_utf8(self.get(name)?).map_err(|_| QueryError::NotUtf8)
    }
}

/// Parses a query (bytes as FT.SEARCH receives them).
pub fn parse(query: &[u8], params: &Params) -> Result<Query, QueryError> {
    if query.len() > QUERY_SIZE_BYTES_MAX {
        return Err(QueryError::TooLong(QUERY_SIZE_BYTES_MAX));
    }
    let src = std::str::from_utf8(query).map_err(|_| QueryError::NotUtf8)?;
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
        nodes: 0,
        params,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.syntax());
    }
    let root = p.or(None)?;
    p.skip_ws();
    let knn = if p.rest().starts_with("=>") {
        p.pos += 2;
        Some(p.knn()?)
    } else {
        None
    };
    p.skip_ws();
    if !p.at_end() {
        return Err(p.syntax());
    }
    debug_assert!(p.nodes <= QUERY_NODES_MAX && p.depth == 0);
    Ok(Query { root, knn })
}

/// Characters that end a word (besides white space).
fn is_special(c: char) -> bool {
    matches!(
        c,
        '(' | ')'
            | '|'
            | '@'
            | '{'
            | '}'
            | '['
            | ']'
            | '"'
            | ':'
            | '*'
            | '$'
            | '='
            | '~'
            | '%'
            | ';'
    )
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    nodes: usize,
    params: &'a Params,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// RediSearch's syntax error for a parse that failed at the current
    /// offset. RediSearch's (lemon) parser reports the token it could not
    /// take: its offset (at the end of the input: the last token's), and
    /// the text of that token if it carries text, else of the last token
    /// before it that does (punctuation carries none). So the input is
    /// lexed again as RediSearch lexes it ([`rs_tokens`]).
    fn syntax(&self) -> QueryError {
        let rest = self.rest();
        let fail = self.pos + (rest.len() - rest.trim_start().len());
        let tokens = rs_tokens(self.src);
        let at = tokens.iter().position(|t| t.end > fail);
        let (offset, upto) = match at {
            Some(i) => (tokens[i].pos, i + 1),
            None => (tokens.last().map_or(0, |t| t.pos), tokens.len()),
        };
        let near = tokens[..upto]
            .iter()
            .rev()
            .find_map(|t| t.text)
            .unwrap_or("");
        syntax_error(offset, near)
    }

    fn node(&mut self, n: Node) -> Result<Node, QueryError> {
        self.nodes += 1;
        if self.nodes > QUERY_NODES_MAX {
            return Err(QueryError::TooManyNodes(QUERY_NODES_MAX));
        }
        Ok(n)
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > QUERY_NESTING_LEVELS_MAX {
            return Err(QueryError::TooDeep(QUERY_NESTING_LEVELS_MAX));
        }
        Ok(())
    }

    fn or(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        let mut alternatives = vec![self.and(field)?];
        loop {
            self.skip_ws();
            if !self.eat('|') {
                break;
            }
            alternatives.push(self.and(field)?);
        }
        if alternatives.len() == 1 {
            return Ok(alternatives.pop().unwrap_or(Node::All));
        }
        self.node(Node::Or(alternatives))
    }

    fn and(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        let mut all = Vec::new();
        loop {
            self.skip_ws();
            if self.at_end()
                || self.rest().starts_with("=>")
                || matches!(self.peek(), Some(')' | '|'))
            {
                break;
            }
            all.push(self.unary(field)?);
        }
        match all.len() {
            0 => Err(self.syntax()),
            1 => Ok(all.pop().unwrap_or(Node::All)),
            _ => self.node(Node::And(all)),
        }
    }

    fn unary(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        if self.eat('-') {
            self.enter()?;
            self.skip_ws();
            let inner = self.unary(field)?;
            self.depth -= 1;
            return self.node(Node::Not(Box::new(inner)));
        }
        self.atom(field)
    }

    fn atom(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        match self.peek() {
            Some('(') => self.group(field),
            Some('@') => {
                self.bump();
                let name = self.field_name()?;
                self.field_value(&name)
            }
            Some('"') => self.phrase(field),
            Some('*') if field.is_none() => {
                self.bump();
                self.node(Node::All)
            }
            Some('$') => {
                let at = self.pos;
                self.bump();
                let name = self.param_name()?;
                let word = self.params.text(&name)?.to_string();
                // A word is never empty (the fuzzer found one that was).
                if word.is_empty() {
                    self.pos = at;
                    return Err(self.syntax());
                }
                self.node(Node::Term {
                    field: field.map(str::to_string),
                    word,
                })
            }
            Some(c) if !is_special(c) => self.word_or_prefix(field),
            _ => Err(self.syntax()),
        }
    }

    fn group(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        self.bump();
        self.enter()?;
        let inner = self.or(field)?;
        self.skip_ws();
        if !self.eat(')') {
            return Err(self.syntax());
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// A word: characters up to white space or a special one; `\` takes
    /// the next character as it is.
    fn word(&mut self) -> Result<String, QueryError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.bump();
                match self.bump() {
                    Some(escaped) => out.push(escaped),
                    None => return Err(self.syntax()),
                }
            } else if c.is_whitespace() || is_special(c) {
                break;
            } else {
                out.push(c);
                self.bump();
            }
        }
        if out.is_empty() {
            return Err(self.syntax());
        }
        Ok(out)
    }

    fn word_or_prefix(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        let word = self.word()?;
        let field = field.map(str::to_string);
        if self.eat('*') {
            return self.node(Node::Prefix {
                field,
                prefix: word,
            });
        }
        self.node(Node::Term { field, word })
    }

    fn field_name(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !is_special(c))
        {
            self.bump();
        }
        if self.pos == start || !self.eat(':') {
            return Err(self.syntax());
        }
        Ok(self.src[start..self.pos - 1].to_string())
    }

    fn param_name(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        if self.pos == start {
            return Err(self.syntax());
        }
        Ok(self.src[start..self.pos].to_string())
    }

    fn field_value(&mut self, field: &str) -> Result<Node, QueryError> {
        self.skip_ws();
        match self.peek() {
            Some('{') => self.tags(field),
            Some('[') => self.range(field),
            Some('(') => self.group(Some(field)),
            Some('"') => self.phrase(Some(field)),
            Some('$') => self.atom(Some(field)),
            Some(c) if !is_special(c) && c != '-' => self.word_or_prefix(Some(field)),
            _ => Err(self.syntax()),
        }
    }

    fn phrase(&mut self, field: Option<&str>) -> Result<Node, QueryError> {
        let start = self.pos;
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    // RediSearch reports an unterminated quote at the first
                    // token inside it.
                    let tokens = rs_tokens(&self.src[start + 1..]);
                    let first = tokens.first();
                    return Err(syntax_error(
                        first.map_or(start + 1, |t| start + 1 + t.pos),
                        first.and_then(|t| t.text).unwrap_or(""),
                    ));
                }
                Some('"') => break,
                Some('\\') => {
                    if let Some(c) = self.bump() {
                        text.push(c);
                    }
                }
                Some(c) => text.push(c),
            }
        }
        self.node(Node::Phrase {
            field: field.map(str::to_string),
            text,
        })
    }
}

/// A syntax error, its `near` text cut to [`NEAR_SIZE_BYTES_MAX`].
fn syntax_error(offset: usize, near: &str) -> QueryError {
    let mut near = near;
    while near.len() > NEAR_SIZE_BYTES_MAX {
        let mut cut = NEAR_SIZE_BYTES_MAX;
        while !near.is_char_boundary(cut) {
            cut -= 1;
        }
        near = &near[..cut];
    }
    QueryError::Syntax {
        offset,
        near: crate::echo(near.as_bytes()),
    }
}

/// One token as RediSearch's lexer (DIALECT 2) cuts the query: where it
/// starts and ends, and the text it carries (terms, numbers, a prefix
/// without its `*`, `@field` and `$param` without their sigil), None for
/// punctuation.
struct RsToken<'a> {
    pos: usize,
    end: usize,
    text: Option<&'a str>,
}

/// The query's tokens, RediSearch's way; only error messages use them.
/// The query is at most `QUERY_SIZE_BYTES_MAX` bytes, so this is bounded.
fn rs_tokens(src: &str) -> Vec<RsToken<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(c) = src[pos..].chars().next() {
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let token = rs_token_at(src, pos, c);
        pos = token.end.max(pos + c.len_utf8());
        out.push(token);
    }
    out
}

/// The token starting at `pos` (not white space), whose first char is `c`.
fn rs_token_at(src: &str, pos: usize, c: char) -> RsToken<'_> {
    let next = src[pos + c.len_utf8()..].chars().next();
    let named =
        next.is_some_and(|n| !n.is_whitespace() && (!is_special(n) || (c == '@' && n == '$')));
    match c {
        // `@name`, `@$name`, `$name`: the name is the text.
        '@' | '$' if named => {
            let from = pos + 1 + usize::from(c == '@' && next == Some('$'));
            let end = word_end(src, from);
            RsToken {
                pos,
                end,
                text: Some(&src[from..end]),
            }
        }
        // RediSearch's `=>` token carries the two bytes after its `=`.
        '=' if next == Some('>') => {
            let text = src.get(pos + 1..(pos + 3).min(src.len())).unwrap_or(">");
            RsToken {
                pos,
                end: pos + 2,
                text: Some(text),
            }
        }
        // A signed number (`-1`, `+inf`) is one token.
        '-' | '+' if next.is_some_and(|n| n.is_ascii_digit() || n == 'i' || n == 'I') => {
            let end = word_end(src, pos + 1);
            RsToken {
                pos,
                end,
                text: Some(&src[pos..end]),
            }
        }
        c if is_special(c) || c == '-' => RsToken {
            pos,
            end: pos + c.len_utf8(),
            text: None,
        },
        _ => {
            let end = word_end(src, pos);
            // `pre*` is one token; its text is `pre`.
            let star = src[end..].starts_with('*');
            RsToken {
                pos,
                end: end + usize::from(star),
                text: Some(&src[pos..end]),
            }
        }
    }
}

/// Where the word starting at `from` ends: at white space or a special
/// character; `\\` takes the next character into the word.
fn word_end(src: &str, from: usize) -> usize {
    let mut end = from;
    let mut chars = src[from..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            end = from + i + c.len_utf8();
            if let Some((j, e)) = chars.next() {
                end = from + j + e.len_utf8();
            }
            continue;
        }
        if c.is_whitespace() || is_special(c) {
            break;
        }
        end = from + i + c.len_utf8();
    }
    end
}

mod display;
mod structured;
