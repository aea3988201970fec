//! Strata's SEARCH: `SEARCH VALUE|TEXT|SEMANTIC index query [LIMIT n]
//! [THRESHOLD t]`, the one command behind the CLI's `strata search` and
//! the text protocol's `SEARCH` line, over the same indexes as FT.SEARCH.
//!
//! - VALUE: the query is one exact tag of the index's first TAG field
//!   (for a whole value: `SCHEMA value AS exact TAG SEPARATOR "|"`); tags
//!   fold case unless the field is CASESENSITIVE.
//! - TEXT: the query is in FT.SEARCH's language (words are ANDed, `|`,
//!   `-`, quotes, `@field:`), ranked by BM25; THRESHOLD is a minimum score.
//! - SEMANTIC: the nearest documents to the query text by the index's
//!   first EMBED vector field (the server embeds the text); THRESHOLD is a
//!   maximum distance.
//!
//! Reply: `[hits, indexing]`, each hit `[key, score, value]` best first
//! (BM25 score, or distance for SEMANTIC), `indexing` 1 while the index is
//! still being built (results may miss keys not yet indexed).

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_search::Query;
use strata_search::query::{Knn, Node, TagMatch};
use strata_search::schema::{FieldKind, IndexDef};
use strata_storage::SearchAnswer;

use super::options::{PAGE_HITS_MAX, SearchArgs};
use super::{Action, Ctx, Request, ft_error, no_such_index, storage_error};
use crate::cmd::args::{self, is};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Value,
    Text,
    Semantic,
}

/// How Strata's SEARCH shapes and filters its reply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub mode: Mode,
    pub threshold: Option<f64>,
}

pub fn search(ctx: &mut Ctx<'_>, a: &[Bytes]) -> Action {
    match plan(ctx, a) {
        Ok(req) => super::prepared(ctx, req),
        Err(e) => e.into(),
    }
}

fn plan(ctx: &Ctx<'_>, a: &[Bytes]) -> Result<Request, Reply> {
    let mode = if is(&a[1], "VALUE") {
        Mode::Value
    } else if is(&a[1], "TEXT") {
        Mode::Text
    } else if is(&a[1], "SEMANTIC") {
        Mode::Semantic
    } else {
        return Err(args::err("ERR SEARCH mode must be VALUE, TEXT or SEMANTIC"));
    };
    let (count, threshold) = options(&a[4..])?;
    if threshold.is_some() && mode == Mode::Value {
        return Err(args::err(
            "ERR THRESHOLD applies to TEXT and SEMANTIC searches",
        ));
    }
    let index = String::from_utf8_lossy(&a[2]).into_owned();
    if !super::nameable(&a[2]) {
        return Err(no_such_index(&index));
    }
    let def = match ctx.shared.store.index_info(&index) {
        Ok(Some(info)) => info.def,
        Ok(None) => return Err(no_such_index(&index)),
        Err(e) => return Err(storage_error(&e)),
    };
    let query = query(mode, &def, &a[3], count)?;
    Ok(Request {
        index,
        def,
        query,
        args: SearchArgs {
            count,
            ..SearchArgs::default()
        },
        strata: Some(Shape { mode, threshold }),
        resp3: false,
    })
}

/// LIMIT n (default 10) and THRESHOLD t.
fn options(a: &[Bytes]) -> Result<(usize, Option<f64>), Reply> {
    let (mut count, mut threshold) = (10, None);
    let mut pairs = a.chunks(2);
    for pair in pairs.by_ref() {
        let [word, value] = pair else {
            return Err(args::syntax());
        };
        if is(word, "LIMIT") {
            let n = args::int(value)?;
            if !(1..=PAGE_HITS_MAX as i64).contains(&n) {
                return Err(Reply::error(format!(
                    "ERR LIMIT must be between 1 and {PAGE_HITS_MAX}"
                )));
            }
            count = n as usize;
        } else if is(word, "THRESHOLD") {
            let t = args::float(value)?;
            if !t.is_finite() {
                return Err(args::err("ERR THRESHOLD must be a finite number"));
            }
            threshold = Some(t);
        } else {
            return Err(args::syntax());
        }
    }
    Ok((count, threshold))
}

fn query(mode: Mode, def: &IndexDef, text: &Bytes, count: usize) -> Result<Query, Reply> {
    let field = |want: fn(&FieldKind) -> bool, what: &str| {
        def.fields
            .iter()
            .find(|f| want(&f.kind))
            .map(|f| f.name.clone())
            .ok_or_else(|| {
                ft_error(format!(
                    "Index `{}` has no {what} field for this search",
                    def.name
                ))
            })
    };
    let utf8 =
        || String::from_utf8(text.to_vec()).map_err(|_| ft_error("Query must be valid UTF-8"));
    match mode {
        Mode::Text => strata_search::query::parse(text, &strata_search::Params::default())
            .map_err(|e| ft_error(e.to_string())),
        Mode::Value => Ok(Query {
            root: Node::Tags {
                field: field(|k| matches!(k, FieldKind::Tag { .. }), "TAG")?,
                tags: vec![TagMatch {
                    tag: utf8()?,
                    prefix: false,
                }],
            },
            knn: None,
        }),
        Mode::Semantic => {
            let field = field(
                |k| matches!(k, FieldKind::Vector(v) if v.embed.is_some()),
                "EMBED vector",
            )?;
            Ok(Query {
                root: Node::All,
                knn: Some(Knn {
                    k: count,
                    score_name: format!("__{field}_score"),
                    field,
                    vector: utf8()?.into_bytes(),
                    param: "query".into(),
                }),
            })
        }
    }
}

/// `[hits, indexing]`, filtered by the threshold.
pub fn reply(shape: &Shape, answer: SearchAnswer) -> Reply {
    let keep = |score: f64| match (shape.mode, shape.threshold) {
        (_, None) | (Mode::Value, _) => true,
        (Mode::Text, Some(min)) => score >= min,
        (Mode::Semantic, Some(max)) => score <= max,
    };
    let hits = answer
        .hits
        .into_iter()
        .filter(|h| keep(h.score))
        .map(|h| {
            Reply::Array(vec![
                Reply::Bulk(h.key),
                Reply::Double(h.score),
                Reply::Bulk(h.record.value),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::Array(hits),
        Reply::Integer(i64::from(answer.building)),
    ])
}
