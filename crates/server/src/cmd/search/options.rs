//! FT.SEARCH's options, parsed before anything is read: what to return,
//! which page, how to score and sort, and the PARAMS. Texts of refusals
//! are RediSearch 2.10's where it has one (`aggregate_request.c`), sent
//! through [`super::ft_error`].

use bytes::Bytes;
use strata_search::score::Bm25;

use super::ft_error;
use strata_protocol::resp::Reply;

/// Most hits one FT.SEARCH page may hold (Strata's bound; RediSearch's
/// `MAXSEARCHRESULTS` is 1,000,000 by default).
pub const PAGE_HITS_MAX: usize = 10_000;
/// Largest LIMIT offset (the hits before it are scored and skipped).
pub const PAGE_OFFSET_MAX: usize = 1_000_000;
/// RETURN names at most this many fields (the schema's own bound, plus
/// the KNN score).
const RETURN_FIELDS_MAX: usize = strata_search::limits::FIELDS_MAX + 1;

/// Sort by a field's value: SORTBY field [ASC|DESC].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortBy {
    pub field: String,
    pub ascending: bool,
}

/// FT.SEARCH's arguments after the index name and the query.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchArgs {
    pub nocontent: bool,
    pub withscores: bool,
    pub bm25: Bm25,
    /// RETURN's fields as (field, name shown), None: every field;
    /// empty: none, as NOCONTENT.
    pub returns: Option<Vec<(String, String)>>,
    pub offset: usize,
    pub count: usize,
    pub sortby: Option<SortBy>,
    /// PARAMS' `name value` pairs, as given.
    pub params: Vec<Bytes>,
}

impl Default for SearchArgs {
    fn default() -> Self {
        SearchArgs {
            nocontent: false,
            withscores: false,
            bm25: Bm25::STRATA,
            returns: None,
            offset: 0,
            count: 10,
            sortby: None,
            params: Vec::new(),
        }
    }
}

impl SearchArgs {
    /// No fields in the reply, only keys (NOCONTENT, RETURN 0, LIMIT 0 0).
    pub fn keys_only(&self) -> bool {
        self.nocontent || self.returns.as_ref().is_some_and(Vec::is_empty)
    }
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

fn unsigned(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg).ok()?.parse::<u64>().ok()
}

/// Parses the options (`a`: the arguments after the query).
pub fn parse(a: &[Bytes]) -> Result<SearchArgs, Reply> {
    let mut s = SearchArgs::default();
    let mut i = 0;
    while i < a.len() {
        let word = &a[i][..];
        let rest = &a[i + 1..];
        i += 1 + if is(word, "NOCONTENT") {
            s.nocontent = true;
            0
        } else if is(word, "WITHSCORES") {
            s.withscores = true;
            0
        } else if is(word, "VERBATIM") || is(word, "NOSTOPWORDS") || is(word, "INORDER") {
            return Err(ft_error(format!(
                "`{}` is not supported by Strata's FT.SEARCH",
                text(word)
            )));
        } else if is(word, "SCORER") {
            scorer(&mut s, rest)?
        } else if is(word, "RETURN") {
            returns(&mut s, rest)?
        } else if is(word, "LIMIT") {
            limit(&mut s, rest)?
        } else if is(word, "SORTBY") {
            sortby(&mut s, rest)?
        } else if is(word, "PARAMS") {
            params(&mut s, rest)?
        } else if is(word, "DIALECT") {
            dialect(rest)?
        } else if is(word, "TIMEOUT") {
            timeout(rest)?
        } else {
            return Err(ft_error(format!(
                "Unknown argument `{}` at position {} for <main>",
                text(word),
                i + 1
            )));
        };
    }
    Ok(s)
}

/// `SCORER BM25|BM25STD`: Strata's BM25 (b 0.75, issue 21's) or
/// RediSearch's BM25STD (b 0.5), for ranks equal to RediSearch's.
fn scorer(s: &mut SearchArgs, rest: &[Bytes]) -> Result<usize, Reply> {
    let Some(name) = rest.first() else {
        return Err(ft_error(
            "Bad arguments for SCORER: Expected an argument, but none provided",
        ));
    };
    s.bm25 = if is(name, "BM25") {
        Bm25::STRATA
    } else if is(name, "BM25STD") {
        Bm25::REDISEARCH
    } else {
        return Err(ft_error(format!("No such scorer {}", text(name))));
    };
    Ok(1)
}

/// RediSearch's `Bad arguments for <what>: ...` of a count argument.
fn count(what: &str, rest: &[Bytes]) -> Result<usize, Reply> {
    let why = match rest.first() {
        None => "Expected an argument, but none provided",
        Some(n) => match std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
        {
            Some(n) if n < 0 => "Value is outside acceptable bounds",
            Some(n) => return Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            None => "Could not convert argument to expected type",
        },
    };
    Err(ft_error(format!("Bad arguments for {what}: {why}")))
}

/// RediSearch's text for fewer arguments than a count announced.
fn too_few(what: &str) -> Reply {
    ft_error(format!(
        "Bad arguments for {what}: Expected an argument, but none provided"
    ))
}

fn returns(s: &mut SearchArgs, rest: &[Bytes]) -> Result<usize, Reply> {
    let n = count("RETURN", rest)?;
    if n > RETURN_FIELDS_MAX {
        return Err(ft_error(format!(
            "RETURN names at most {RETURN_FIELDS_MAX} fields"
        )));
    }
    let Some(names) = rest.get(1..=n) else {
        return Err(too_few("RETURN"));
    };
    let mut fields = Vec::with_capacity(n);
    let mut j = 0;
    while j < names.len() {
        // `RETURN n field AS shown`: the field (a schema name or path)
        // under another name in the reply.
        let name = text(&names[j]);
        if names.get(j + 1).is_some_and(|w| is(w, "AS")) {
            let Some(alias) = names.get(j + 2) else {
                return Err(ft_error(
                    "RETURN path AS name - must be accompanied with NAME",
                ));
            };
            fields.push((name, text(alias)));
            j += 3;
        } else {
            fields.push((name.clone(), name));
            j += 1;
        }
    }
    s.returns = Some(fields);
    Ok(1 + n)
}

fn limit(s: &mut SearchArgs, rest: &[Bytes]) -> Result<usize, Reply> {
    let [offset, count, ..] = rest else {
        return Err(ft_error("LIMIT requires two arguments"));
    };
    let (Some(offset), Some(count)) = (unsigned(offset), unsigned(count)) else {
        return Err(ft_error("LIMIT needs two numeric arguments"));
    };
    if count == 0 && offset != 0 {
        return Err(ft_error(
            "The `offset` of the LIMIT must be 0 when `num` is 0",
        ));
    }
    if count > PAGE_HITS_MAX as u64 {
        return Err(ft_error(format!(
            "LIMIT exceeds maximum of {PAGE_HITS_MAX}"
        )));
    }
    if offset > PAGE_OFFSET_MAX as u64 {
        return Err(ft_error(format!(
            "OFFSET exceeds maximum of {PAGE_OFFSET_MAX}"
        )));
    }
    s.offset = offset as usize;
    s.count = count as usize;
    Ok(2)
}

fn sortby(s: &mut SearchArgs, rest: &[Bytes]) -> Result<usize, Reply> {
    if s.sortby.is_some() {
        return Err(ft_error("Multiple SORTBY steps are not allowed"));
    }
    let Some(field) = rest.first() else {
        return Err(ft_error("Bad SORTBY arguments"));
    };
    let field = text(field);
    let field = field.strip_prefix('@').unwrap_or(&field).to_string();
    let (ascending, used) = match rest.get(1) {
        Some(w) if is(w, "DESC") => (false, 2),
        Some(w) if is(w, "ASC") => (true, 2),
        _ => (true, 1),
    };
    s.sortby = Some(SortBy { field, ascending });
    Ok(used)
}

fn params(s: &mut SearchArgs, rest: &[Bytes]) -> Result<usize, Reply> {
    let n = count("PARAMS", rest)?;
    if n == 0 || !n.is_multiple_of(2) {
        return Err(ft_error(
            "Parameters must be specified in PARAM VALUE pairs",
        ));
    }
    let Some(pairs) = rest.get(1..=n) else {
        return Err(too_few("PARAMS"));
    };
    if !s.params.is_empty() {
        return Err(ft_error(
            "Multiple PARAMS are not allowed. Parameters can be defined only once",
        ));
    }
    s.params = pairs.to_vec();
    Ok(1 + n)
}

/// Strata's query language is RediSearch's DIALECT 2, whatever DIALECT
/// says (RediSearch's default is 1): 2, 3 and 4 are accepted (their
/// differences are in features Strata lacks or refuses), 1 is refused
/// rather than answered with other semantics.
fn dialect(rest: &[Bytes]) -> Result<usize, Reply> {
    let Some(d) = rest.first() else {
        return Err(ft_error("Need an argument for DIALECT"));
    };
    match unsigned(d) {
        Some(2..=4) => Ok(1),
        Some(1) => Err(ft_error(
            "DIALECT 1 is not supported by Strata: queries use DIALECT 2",
        )),
        _ => Err(ft_error(
            "DIALECT requires a non negative integer >=1 and <= 4",
        )),
    }
}

/// TIMEOUT is accepted and ignored: a query is bounded by the entries it
/// may read (`QUERY_ENTRIES_SCANNED_MAX`), not by time.
fn timeout(rest: &[Bytes]) -> Result<usize, Reply> {
    let Some(t) = rest.first() else {
        return Err(ft_error("Need argument for TIMEOUT"));
    };
    if std::str::from_utf8(t)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .is_none_or(|t| t < 0)
    {
        return Err(ft_error("TIMEOUT requires a non negative integer"));
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn err(words: &[&str]) -> String {
        match parse(&args(words)) {
            Err(Reply::Error(e)) => e.into_owned(),
            other => panic!("{words:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn options_parse() {
        let s = parse(&args(&[
            "NOCONTENT",
            "withscores",
            "SCORER",
            "BM25STD",
            "LIMIT",
            "5",
            "20",
            "SORTBY",
            "@n",
            "DESC",
            "PARAMS",
            "2",
            "v",
            "x",
            "DIALECT",
            "2",
            "TIMEOUT",
            "100",
        ]))
        .unwrap();
        assert!(s.nocontent && s.withscores);
        assert_eq!(s.bm25, Bm25::REDISEARCH);
        assert_eq!((s.offset, s.count), (5, 20));
        assert_eq!(
            s.sortby,
            Some(SortBy {
                field: "n".into(),
                ascending: false
            })
        );
        assert_eq!(s.params, args(&["v", "x"]));
        let s = parse(&args(&["RETURN", "3", "$.a", "AS", "a", "SORTBY", "t"])).unwrap();
        assert_eq!(s.returns, Some(vec![("$.a".to_string(), "a".to_string())]));
        assert!(s.sortby.unwrap().ascending);
        assert!(parse(&args(&["RETURN", "0"])).unwrap().keys_only());
    }

    #[test]
    fn refusals_are_redisearch_texts() {
        assert_eq!(err(&["LIMIT", "1"]), "LIMIT requires two arguments");
        assert_eq!(
            err(&["LIMIT", "a", "1"]),
            "LIMIT needs two numeric arguments"
        );
        assert_eq!(
            err(&["LIMIT", "1", "0"]),
            "The `offset` of the LIMIT must be 0 when `num` is 0"
        );
        assert_eq!(
            err(&["LIMIT", "0", "10001"]),
            "LIMIT exceeds maximum of 10000"
        );
        assert_eq!(
            err(&["DIALECT", "5"]),
            "DIALECT requires a non negative integer >=1 and <= 4"
        );
        assert_eq!(err(&["DIALECT"]), "Need an argument for DIALECT");
        assert_eq!(
            err(&["TIMEOUT", "-1"]),
            "TIMEOUT requires a non negative integer"
        );
        assert_eq!(
            err(&["PARAMS", "3", "a", "b", "c"]),
            "Parameters must be specified in PARAM VALUE pairs"
        );
        assert!(err(&["PARAMS", "4", "a", "b"]).starts_with("Bad arguments for PARAMS"));
        assert_eq!(err(&["SCORER", "TFIDF"]), "No such scorer TFIDF");
        assert_eq!(
            err(&["BOGUS"]),
            "Unknown argument `BOGUS` at position 1 for <main>"
        );
        assert!(err(&["RETURN", "99999999999999999999"]).starts_with("Bad arguments for RETURN"));
        let none = "Expected an argument, but none provided";
        assert_eq!(
            err(&["RETURN", "5", "a"]),
            format!("Bad arguments for RETURN: {none}")
        );
        assert_eq!(
            err(&["RETURN"]),
            format!("Bad arguments for RETURN: {none}")
        );
        assert_eq!(
            err(&["PARAMS", "2", "a"]),
            format!("Bad arguments for PARAMS: {none}")
        );
        assert_eq!(
            err(&["RETURN", "-1"]),
            "Bad arguments for RETURN: Value is outside acceptable bounds"
        );
    }
}
