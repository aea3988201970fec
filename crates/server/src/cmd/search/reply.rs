//! FT.SEARCH's and FT.INFO's replies, in RediSearch 2.10's shapes.
//!
//! FT.SEARCH: `[total, key, [score], [fields], ...]`. The fields of a
//! document are what RediSearch returns for its kind: `["value", value]`
//! for `ON STRING` (Strata's: the whole value is the field `value`),
//! `["$", json]` for `ON JSON`; a KNN query puts its score (the distance)
//! first, under its name. RETURN picks fields by schema name or path.

use std::cmp::Ordering;

use bytes::Bytes;
use serde_json::Value;
use strata_protocol::resp::Reply;
use strata_search::schema::{DocKind, FieldKind, IndexDef, PathStep, STRING_FIELD};
use strata_storage::{IndexInfo, SearchAnswer, SearchHit};

use super::options::SortBy;
use super::{Request, SORT_CANDIDATES_MAX, ft_error};

/// FT.SEARCH's reply for `answer`, sorted and paged as asked.
pub fn search(req: &Request, answer: SearchAnswer) -> Reply {
    let SearchAnswer { total, hits, .. } = answer;
    let hits = match sorted_page(req, total, hits) {
        Ok(hits) => hits,
        Err(e) => return e,
    };
    let mut out = Vec::with_capacity(1 + 3 * hits.len());
    out.push(Reply::Integer(i64::try_from(total).unwrap_or(i64::MAX)));
    // LIMIT 0 0: the count alone.
    if req.args.count == 0 {
        return Reply::Array(out);
    }
    for hit in hits {
        let fields = (!req.args.keys_only()).then(|| fields(req, &hit));
        out.push(Reply::Bulk(hit.key));
        if req.args.withscores {
            out.push(Reply::Double(hit.score));
        }
        if let Some(fields) = fields {
            out.push(Reply::Array(fields));
        }
    }
    Reply::Array(out)
}

/// The page LIMIT asked for: as storage ranked it, or by SORTBY's field
/// (then storage returned every match up to [`SORT_CANDIDATES_MAX`]).
pub fn sorted_page(req: &Request, total: u64, hits: Vec<SearchHit>) -> Result<Vec<SearchHit>, Reply> {
    let Some(sort) = &req.args.sortby else {
        return Ok(hits);
    };
    if total > SORT_CANDIDATES_MAX as u64 {
        return Err(ft_error(format!(
            "SORTBY sorts at most {SORT_CANDIDATES_MAX} matches and this query has {total}: narrow it"
        )));
    }
    let mut keyed: Vec<(Option<SortValue>, SearchHit)> = hits
        .into_iter()
        .map(|hit| (sort_value(&req.def, sort, &hit.record.value), hit))
        .collect();
    keyed.sort_by(|(a, ha), (b, hb)| {
        compare(a.as_ref(), b.as_ref(), sort.ascending).then_with(|| ha.key.cmp(&hb.key))
    });
    Ok(keyed
        .into_iter()
        .map(|(_, hit)| hit)
        .skip(req.args.offset)
        .take(req.args.count)
        .collect())
}

#[derive(Debug, PartialEq, PartialOrd)]
enum SortValue {
    Number(f64),
    Text(String),
}

/// Documents without the value come last, whatever the direction (as in
/// RediSearch).
fn compare(a: Option<&SortValue>, b: Option<&SortValue>, ascending: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let o = a.partial_cmp(b).unwrap_or(Ordering::Equal);
            if ascending { o } else { o.reverse() }
        }
    }
}

fn sort_value(def: &IndexDef, sort: &SortBy, value: &[u8]) -> Option<SortValue> {
    let id = def.field_id(&sort.field)?;
    let field = &def.fields[usize::from(id)];
    let raw = match def.on {
        DocKind::String => String::from_utf8(value.to_vec()).ok()?,
        DocKind::Json => {
            let doc: Value = serde_json::from_slice(value).ok()?;
            json_text(at_path(&doc, &field.steps)?)
        }
    };
    match field.kind {
        FieldKind::Numeric => raw.trim().parse::<f64>().ok().map(SortValue::Number),
        // RediSearch compares sortable text folded to lower case.
        _ => Some(SortValue::Text(raw.to_lowercase())),
    }
}

/// A hit's field list.
fn fields(req: &Request, hit: &SearchHit) -> Vec<Reply> {
    let knn_name = req.query.knn.as_ref().map(|k| k.score_name.as_str());
    let Some(returns) = &req.args.returns else {
        let mut out = Vec::with_capacity(4);
        if let Some(name) = knn_name {
            out.push(bulk_str(name));
            out.push(Reply::Double(hit.score));
        }
        let whole = match req.def.on {
            DocKind::String => STRING_FIELD,
            DocKind::Json => "$",
        };
        out.push(bulk_str(whole));
        out.push(Reply::Bulk(hit.record.value.clone()));
        return out;
    };
    let json = match req.def.on {
        DocKind::Json => serde_json::from_slice::<Value>(&hit.record.value).ok(),
        DocKind::String => None,
    };
    let mut out = Vec::with_capacity(2 * returns.len());
    for (field, shown) in returns {
        let value = if Some(field.as_str()) == knn_name {
            Some(Reply::Double(hit.score))
        } else {
            returned_value(&req.def, field, &hit.record.value, json.as_ref())
        };
        if let Some(value) = value {
            out.push(bulk_str(shown));
            out.push(value);
        }
    }
    out
}

/// RETURN's value for `field` (a schema name, or a path), if the
/// document has it.
fn returned_value(def: &IndexDef, field: &str, value: &Bytes, json: Option<&Value>) -> Option<Reply> {
    let schema = def
        .field_id(field)
        .map(|id| &def.fields[usize::from(id)]);
    match def.on {
        DocKind::String => {
            let is_value = field == STRING_FIELD || schema.is_some_and(|f| f.path == STRING_FIELD);
            is_value.then(|| Reply::Bulk(value.clone()))
        }
        DocKind::Json => {
            let json = json?;
            if field == "$" {
                return Some(Reply::Bulk(value.clone()));
            }
            let parsed;
            let steps = match schema {
                Some(f) => &f.steps,
                None => {
                    parsed = strata_search::schema::parse_json_path(field).ok()?;
                    &parsed
                }
            };
            let found = at_path(json, steps)?;
            Some(Reply::Bulk(Bytes::from(json_text(found))))
        }
    }
}

fn at_path<'a>(doc: &'a Value, steps: &[PathStep]) -> Option<&'a Value> {
    steps.iter().try_fold(doc, |v, step| match step {
        PathStep::Key(k) => v.get(k.as_str()),
        PathStep::Index(i) => v.get(*i),
    })
}

/// A JSON value as RETURN shows it: a string's text, anything else as
/// JSON.
fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bulk_str(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn status(s: &'static str) -> Reply {
    Reply::status(s)
}

/// FT.INFO: RediSearch's flat key/value list, with what Strata keeps
/// exactly (no sizes, term or record counts it does not keep).
/// `percent_indexed` while building is storage's estimate: keys examined
/// over keys stored (below 1 until built).
pub fn info(info: &IndexInfo) -> Reply {
    let def = &info.def;
    let out = vec![
        status("index_name"),
        Reply::Status(def.name.clone().into()),
        status("index_options"),
        Reply::Array(Vec::new()),
        status("index_definition"),
        Reply::Array(definition(def)),
        status("attributes"),
        Reply::Array(def.fields.iter().map(|f| attribute(def, f)).collect()),
        status("num_docs"),
        Reply::Double(info.stats.docs as f64),
        status("hash_indexing_failures"),
        Reply::Double(info.stats.skipped as f64),
        status("indexing"),
        Reply::Double(if info.building { 1.0 } else { 0.0 }),
        status("percent_indexed"),
        Reply::Double(info.percent_indexed),
    ];
    Reply::Array(out)
}

fn definition(def: &IndexDef) -> Vec<Reply> {
    let key_type = match def.on {
        DocKind::String => "STRING",
        DocKind::Json => "JSON",
    };
    // RediSearch's default prefix is "" (every key).
    let prefixes = if def.prefixes.is_empty() {
        vec![Reply::Status("".into())]
    } else {
        def.prefixes
            .iter()
            .map(|p| Reply::Status(String::from_utf8_lossy(p).into_owned().into()))
            .collect()
    };
    let mut out = vec![
        status("key_type"),
        status(key_type),
        status("prefixes"),
        Reply::Array(prefixes),
    ];
    if def.language != strata_search::schema::Language::English {
        out.push(status("default_language"));
        out.push(status(def.language.name()));
    }
    out.push(status("default_score"));
    out.push(Reply::Double(1.0));
    out
}

fn attribute(def: &IndexDef, f: &strata_search::schema::FieldDef) -> Reply {
    let mut out = vec![
        status("identifier"),
        Reply::Status(f.path.clone().into()),
        status("attribute"),
        Reply::Status(f.name.clone().into()),
        status("type"),
    ];
    match &f.kind {
        FieldKind::Text { weight, nostem } => {
            out.extend([status("TEXT"), status("WEIGHT"), Reply::Double(*weight)]);
            if f.sortable {
                out.push(status("SORTABLE"));
            }
            if *nostem {
                out.push(status("NOSTEM"));
            }
            return Reply::Array(out);
        }
        FieldKind::Tag {
            separator,
            case_sensitive,
        } => {
            out.extend([
                status("TAG"),
                status("SEPARATOR"),
                Reply::Status(char::from(*separator).to_string().into()),
            ]);
            if *case_sensitive {
                out.push(status("CASESENSITIVE"));
            }
        }
        FieldKind::Numeric => out.push(status("NUMERIC")),
        FieldKind::Vector(v) => {
            out.push(status("VECTOR"));
            // Strata's: the TEXT field the server embeds.
            if let Some(source) = v.embed.and_then(|id| def.fields.get(usize::from(id))) {
                out.extend([status("EMBED"), Reply::Status(source.name.clone().into())]);
            }
        }
    }
    if f.sortable {
        out.push(status("SORTABLE"));
    }
    Reply::Array(out)
}
