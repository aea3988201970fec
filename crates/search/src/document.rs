//! A value as a document: the fields an index reads from it, or why it is
//! skipped.
//!
//! - `ON STRING`: the whole value is the field `value`. TEXT, TAG and
//!   NUMERIC fields need it to be UTF-8 (a value that is not is skipped); a
//!   VECTOR field reads the raw bytes as little-endian FLOAT32s.
//! - `ON JSON`: the value must be a JSON object (else skipped); each field
//!   is found by its path ([`crate::schema::parse_json_path`]).
//!
//! Skipping is never an error for the write: the write is applied, the
//! document has no entries, and the index's statistics count it. A field
//! whose value has the wrong type (a NUMERIC field holding `"abc"`, a
//! vector of the wrong length) is absent from that document, where
//! RediSearch would fail the whole document: with `ON STRING`, one value
//! is often indexed both as TEXT and NUMERIC, and a text that is not a
//! number must still be found by its words.

use serde_json::Value;

use crate::analyze::{normalize_tag, split_tags};
use crate::limits::{DOCUMENT_SIZE_BYTES_MAX, TAG_SIZE_BYTES_MAX, TAGS_PER_FIELD_MAX};
use crate::schema::{DocKind, FieldDef, FieldId, FieldKind, IndexDef, PathStep, VectorDef};

/// One field's value in one document.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// Texts in order (a JSON array of strings gives several).
    Text(Vec<String>),
    /// Normalized tags, sorted, without duplicates.
    Tags(Vec<String>),
    /// Finite.
    Numeric(f64),
    /// Exactly the field's `DIM` finite floats.
    Vector(Vec<f32>),
}

/// A document: one slot per field of the definition, None where absent.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Document {
    pub fields: Vec<Option<FieldValue>>,
}

/// Why a value has no entries although its key is covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    TooLarge,
    NotUtf8,
    NotJson,
    NotJsonObject,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Extracted {
    Indexed(Document),
    Skipped(SkipReason),
}

/// The document `value` makes for `def` (the caller checked that the
/// index covers the key). `embeddings` are the vectors the server computed
/// for `EMBED` fields: `(field id, vector)`.
pub fn extract(def: &IndexDef, value: &[u8], embeddings: &[(u16, Vec<f32>)]) -> Extracted {
    if value.len() > DOCUMENT_SIZE_BYTES_MAX {
        return Extracted::Skipped(SkipReason::TooLarge);
    }
    let mut doc = match def.on {
        DocKind::String => match from_string(def, value) {
            Ok(doc) => doc,
            Err(reason) => return Extracted::Skipped(reason),
        },
        DocKind::Json => match from_json(def, value) {
            Ok(doc) => doc,
            Err(reason) => return Extracted::Skipped(reason),
        },
    };
    for (field, vector) in embeddings {
        let Some(f) = def.fields.get(usize::from(*field)) else {
            continue;
        };
        if let FieldKind::Vector(v) = &f.kind
            && v.embed.is_some()
        {
            doc.fields[usize::from(*field)] = vector_value(v.dim, vector.clone());
        }
    }
    debug_assert_eq!(doc.fields.len(), def.fields.len());
    Extracted::Indexed(doc)
}

fn from_string(def: &IndexDef, value: &[u8]) -> Result<Document, SkipReason> {
    let text = std::str::from_utf8(value).ok();
    let needs_text = def
        .fields
        .iter()
        .any(|f| !matches!(f.kind, FieldKind::Vector(_)));
    if needs_text && text.is_none() {
        return Err(SkipReason::NotUtf8);
    }
    let fields = def
        .fields
        .iter()
        .map(|f| match (&f.kind, text) {
            (FieldKind::Vector(v), _) if v.embed.is_none() => vector_from_blob(v.dim, value),
            (FieldKind::Vector(_), _) => None,
            (FieldKind::Text { .. }, Some(t)) => Some(FieldValue::Text(vec![t.to_string()])),
            (
                FieldKind::Tag {
                    separator,
                    case_sensitive,
                },
                Some(t),
            ) => tags_value(split_tags(t, *separator, *case_sensitive)),
            (FieldKind::Numeric, Some(t)) => parse_number(t).map(FieldValue::Numeric),
            (_, None) => None,
        })
        .collect();
    Ok(Document { fields })
}

fn from_json(def: &IndexDef, value: &[u8]) -> Result<Document, SkipReason> {
    // serde_json refuses nesting past JSON_NESTING_LEVELS_MAX (its own
    // recursion limit) with an error, so no input can exhaust the stack.
    let json: Value = serde_json::from_slice(value).map_err(|_| SkipReason::NotJson)?;
    if !json.is_object() {
        return Err(SkipReason::NotJsonObject);
    }
    let fields = def.fields.iter().map(|f| json_field(f, &json)).collect();
    Ok(Document { fields })
}

fn json_field(f: &FieldDef, root: &Value) -> Option<FieldValue> {
    let v = lookup(root, &f.steps)?;
    match &f.kind {
        FieldKind::Text { .. } => match v {
            Value::String(s) => Some(FieldValue::Text(vec![s.clone()])),
            Value::Array(items) => {
                let texts: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect();
                (!texts.is_empty()).then_some(FieldValue::Text(texts))
            }
            _ => None,
        },
        FieldKind::Tag {
            separator,
            case_sensitive,
        } => match v {
            Value::String(s) => tags_value(split_tags(s, *separator, *case_sensitive)),
            Value::Bool(b) => tags_value(vec![b.to_string()]),
            // RediSearch: the elements of an array are tags, not split.
            Value::Array(items) => {
                let mut tags: Vec<String> = items
                    .iter()
                    .filter_map(|i| match i {
                        Value::String(s) => Some(normalize_tag(s, *case_sensitive)),
                        Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .filter(|t| !t.is_empty() && t.len() <= TAG_SIZE_BYTES_MAX)
                    .collect();
                tags.sort();
                tags.dedup();
                tags.truncate(TAGS_PER_FIELD_MAX);
                tags_value(tags)
            }
            _ => None,
        },
        FieldKind::Numeric => v
            .as_f64()
            .filter(|n| n.is_finite())
            .map(FieldValue::Numeric),
        FieldKind::Vector(vd) if vd.embed.is_none() => {
            let items = v.as_array()?;
            let floats: Option<Vec<f32>> =
                items.iter().map(|i| i.as_f64().map(|x| x as f32)).collect();
            vector_value(vd.dim, floats?)
        }
        FieldKind::Vector(_) => None,
    }
}

fn lookup<'a>(root: &'a Value, steps: &[PathStep]) -> Option<&'a Value> {
    steps.iter().try_fold(root, |v, step| match step {
        PathStep::Key(k) => v.as_object()?.get(k),
        PathStep::Index(i) => v.as_array()?.get(*i),
    })
}

fn tags_value(tags: Vec<String>) -> Option<FieldValue> {
    (!tags.is_empty()).then_some(FieldValue::Tags(tags))
}

/// The texts the server must embed for `value` under `def`: for each
/// `EMBED` vector field, (the vector field's id, its source TEXT field's
/// text; several texts of a JSON array joined by a space). Empty when the
/// value is skipped or has no such text.
pub fn embed_sources(def: &IndexDef, value: &[u8]) -> Vec<(FieldId, String)> {
    let has_embed = def
        .fields
        .iter()
        .any(|f| matches!(&f.kind, FieldKind::Vector(v) if v.embed.is_some()));
    if !has_embed {
        return Vec::new();
    }
    let Extracted::Indexed(doc) = extract(def, value, &[]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        let FieldKind::Vector(VectorDef {
            embed: Some(source),
            ..
        }) = &f.kind
        else {
            continue;
        };
        if let Some(Some(FieldValue::Text(texts))) = doc.fields.get(usize::from(*source)) {
            out.push((i as FieldId, texts.join(" ")));
        }
    }
    out
}

/// The hash that ties a computed vector to the text it was computed from
/// (xxh3-64 of the UTF-8 bytes): a vector is stored only beside the text
/// it embeds. Part of the log format (`Embedding::text_hash`): never change.
pub fn text_hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// A whole string as a finite number (Rust's float syntax, surrounding
/// ASCII whitespace allowed); `inf` and `nan` are not numbers here.
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn vector_from_blob(dim: u32, blob: &[u8]) -> Option<FieldValue> {
    vector_value(dim, floats_from_blob(dim, blob)?)
}

/// `dim` little-endian FLOAT32s, exactly (a query's KNN blob too).
pub fn floats_from_blob(dim: u32, blob: &[u8]) -> Option<Vec<f32>> {
    if blob.len() != dim as usize * 4 {
        return None;
    }
    Some(
        blob.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn vector_value(dim: u32, v: Vec<f32>) -> Option<FieldValue> {
    (v.len() == dim as usize && v.iter().all(|x| x.is_finite())).then_some(FieldValue::Vector(v))
}
