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
    if req.resp3 {
        return search_resp3(req, total, hits);
    }
    let mut out = Vec::with_capacity(1 + 3 * hits.len());
    out.push(Reply::Integer(i64::try_from(total).unwrap_or(i64::MAX)));
    // LIMIT 0 0: the count alone.
    if req.args.count == 0 {
        return Reply::Array(out);
    }
    for hit in hits {
        let fields = (!req.args.keys_only()).then(|| fields(req, &hit));
        if req.args.withscores {
            out.push(Reply::Bulk(hit.key.clone()));
            out.push(Reply::Double(score(req, &hit)));
        } else {
            out.push(Reply::Bulk(hit.key));
        }
        if let Some(fields) = fields {
            out.push(Reply::Array(fields));
        }
    }
    Reply::Array(out)
}

/// RediSearch's RESP3 FT.SEARCH: `{attributes, total_results, format,
/// results: [{id, [score], [extra_attributes], values}], warning}`.
fn search_resp3(req: &Request, total: u64, hits: Vec<SearchHit>) -> Reply {
    let mut results = Vec::with_capacity(hits.len());
    if req.args.count > 0 {
        for hit in hits {
            let mut entry = vec![(status("id"), Reply::Bulk(hit.key.clone()))];
            if req.args.withscores {
                entry.push((status("score"), Reply::Double(score(req, &hit))));
            }
            if !req.args.keys_only() {
                let fields = fields(req, &hit);
                let pairs = fields
                    .chunks_exact(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect();
                entry.push((status("extra_attributes"), Reply::Map(pairs)));
            }
            entry.push((status("values"), Reply::Array(Vec::new())));
            results.push(Reply::Map(entry));
        }
    }
    Reply::Map(vec![
        (status("attributes"), Reply::Array(Vec::new())),
        (
            status("total_results"),
            Reply::Integer(i64::try_from(total).unwrap_or(i64::MAX)),
        ),
        (status("format"), status("STRING")),
        (status("results"), Reply::Array(results)),
        (status("warning"), Reply::Array(Vec::new())),
    ])
}

/// WITHSCORES' score: BM25, or 0 for a KNN query (RediSearch's: the
/// distance is a field).
fn score(req: &Request, hit: &SearchHit) -> f64 {
    if req.query.knn.is_some() {
        0.0
    } else {
        hit.score
    }
}

/// A KNN distance as RediSearch prints it: 12 significant digits (C's
/// `%.12g`).
pub fn distance_text(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(format_g12(d)))
}

fn format_g12(d: f64) -> String {
    if !d.is_finite() {
        return if d.is_nan() {
            "nan".into()
        } else if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if d == 0.0 {
        return "0".into();
    }
    const DIGITS: i32 = 12;
    let sci = format!("{:.*e}", (DIGITS - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if exp < -4 || exp >= DIGITS {
        let m = trim(mantissa.to_string());
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (DIGITS - 1 - exp).max(0) as usize;
        trim(format!("{d:.decimals$}"))
    }
}

/// The page LIMIT asked for: as storage ranked it, or by SORTBY's field
/// (then storage returned every match up to [`SORT_CANDIDATES_MAX`]).
pub fn sorted_page(
    req: &Request,
    total: u64,
    hits: Vec<SearchHit>,
) -> Result<Vec<SearchHit>, Reply> {
    let Some(sort) = &req.args.sortby else {
        return Ok(hits);
    };
    let knn_score = req.query.knn.as_ref().map(|k| k.score_name.as_str());
    if total > SORT_CANDIDATES_MAX as u64 {
        return Err(ft_error(format!(
            "SORTBY sorts at most {SORT_CANDIDATES_MAX} matches and this query has {total}: narrow it"
        )));
    }
    let mut keyed: Vec<(Option<SortValue>, SearchHit)> = hits
        .into_iter()
        .map(|hit| {
            let value = if Some(sort.field.as_str()) == knn_score {
                Some(SortValue::Number(hit.score))
            } else {
                sort_value(&req.def, sort, &hit.record.value)
            };
            (value, hit)
        })
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
            out.push(distance_text(hit.score));
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
            Some(distance_text(hit.score))
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
fn returned_value(
    def: &IndexDef,
    field: &str,
    value: &Bytes,
    json: Option<&Value>,
) -> Option<Reply> {
    let schema = def.field_id(field).map(|id| &def.fields[usize::from(id)]);
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
    let int = |n: u64| Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    // A map: RESP2's flat list, RESP3's map, as RediSearch's.
    Reply::Map(vec![
        (status("index_name"), Reply::Status(def.name.clone().into())),
        (status("index_options"), Reply::Array(Vec::new())),
        (status("index_definition"), Reply::Array(definition(def))),
        (
            status("attributes"),
            Reply::Array(def.fields.iter().map(|f| attribute(def, f)).collect()),
        ),
        (status("num_docs"), int(info.stats.docs)),
        (status("hash_indexing_failures"), int(info.stats.skipped)),
        (status("indexing"), int(u64::from(info.building))),
        (
            status("percent_indexed"),
            Reply::Double(info.percent_indexed),
        ),
    ])
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
        FieldKind::Numeric => {
            out.push(status("NUMERIC"));
            // RediSearch's NUMERIC SORTABLE is always UNF.
            if f.sortable {
                out.extend([status("SORTABLE"), status("UNF")]);
            }
            return Reply::Array(out);
        }
        FieldKind::Vector(v) => {
            let metric = match v.metric {
                strata_search::schema::Metric::Cosine => "COSINE",
                strata_search::schema::Metric::L2 => "L2",
                strata_search::schema::Metric::Ip => "IP",
            };
            out.extend([
                status("VECTOR"),
                status("algorithm"),
                status("FLAT"),
                status("data_type"),
                status("FLOAT32"),
                status("dim"),
                Reply::Integer(i64::from(v.dim)),
                status("distance_metric"),
                status(metric),
            ]);
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

#[cfg(test)]
mod tests {
    use super::format_g12;

    #[test]
    fn distances_print_as_c_does_with_twelve_digits() {
        assert_eq!(format_g12(0.118_939_757_347_123), "0.118939757347");
        assert_eq!(format_g12(1.0), "1");
        assert_eq!(format_g12(0.0), "0");
        assert_eq!(format_g12(0.5), "0.5");
        assert_eq!(format_g12(1e-5), "1e-05");
        assert_eq!(format_g12(0.000_123_456_789_012_34), "0.000123456789012");
        assert_eq!(format_g12(123_456_789_012_345.0), "1.23456789012e+14");
        assert_eq!(format_g12(-2.25), "-2.25");
    }
}
