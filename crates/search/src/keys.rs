//! The layout of every search entry in the data keyspace, behind the tag
//! byte [`TAG_SEARCH`] (storage's tags are `k` records, `m` meta, `x`
//! expiry). Integers in keys are big-endian; strings inside keys are
//! escaped and terminated ([`crate::codec::put_escaped`]), so a prefix scan
//! finds exactly one string and `term*` is a prefix scan too.
//!
//! ```text
//! s 00000000 01 name                  -> definition (IndexDef::encode)   catalog
//! s 00000000 02                       -> u32 LE: the next index id       catalog
//! s 00000000 03 id                    -> build state (while building)     catalog
//! s 00000000 04 id                    -> empty: dropped, entries not yet purged
//! s id 01                             -> IndexStats
//! s id 02 userkey                     -> DocRecord (per-field token counts)
//! s id 03 esc(term) 00 01 userkey     -> term posting (doc length, per field: tf, positions)
//! s id 04 esc(stem) 00 01 userkey     -> stem posting (doc length, per field: tf)
//! s id 05 field esc(tag) 00 01 userkey -> empty
//! s id 06 field ordered_f64 userkey   -> empty
//! s id 07 field userkey               -> FLOAT32 LE x dim
//! ```
//!
//! `id` is a u32 (big-endian, never 0 for an index), `field` a u16. Every
//! entry of an index lies in [`index_range`]: dropping an index removes one
//! range. Every entry of a document ends with its user key, so a query
//! reads the user key from the entry key alone.

use crate::codec::{DecodeError, put_escaped, take_escaped};
use crate::schema::{FieldId, IndexId};

/// The tag byte of search entries in the data keyspace.
pub const TAG_SEARCH: u8 = b's';

/// The catalog's pseudo index id.
pub const CATALOG_ID: IndexId = 0;

const CATALOG_DEFINITION: u8 = 0x01;
const CATALOG_NEXT_ID: u8 = 0x02;
const CATALOG_BUILD: u8 = 0x03;
const CATALOG_DROPPED: u8 = 0x04;

pub const KIND_STATS: u8 = 0x01;
pub const KIND_DOC: u8 = 0x02;
pub const KIND_TERM: u8 = 0x03;
pub const KIND_STEM: u8 = 0x04;
pub const KIND_TAG: u8 = 0x05;
pub const KIND_NUMERIC: u8 = 0x06;
pub const KIND_VECTOR: u8 = 0x07;

fn head(id: IndexId, kind: u8, extra: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + extra);
    k.push(TAG_SEARCH);
    k.extend_from_slice(&id.to_be_bytes());
    k.push(kind);
    k
}

/// The definition of the index named `name`.
pub fn definition_key(name: &str) -> Vec<u8> {
    let mut k = head(CATALOG_ID, CATALOG_DEFINITION, name.len());
    k.extend_from_slice(name.as_bytes());
    k
}

/// Every definition: FT._LIST and startup scan this prefix.
pub fn definitions_prefix() -> Vec<u8> {
    head(CATALOG_ID, CATALOG_DEFINITION, 0)
}

/// The next index id to assign (u32 LE; absent means 1).
pub fn next_id_key() -> Vec<u8> {
    head(CATALOG_ID, CATALOG_NEXT_ID, 0)
}

/// The build state of index `id` (present only while it is being built).
pub fn build_key(id: IndexId) -> Vec<u8> {
    let mut k = head(CATALOG_ID, CATALOG_BUILD, 4);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Every build state.
pub fn builds_prefix() -> Vec<u8> {
    head(CATALOG_ID, CATALOG_BUILD, 0)
}

/// Marks index `id` as dropped with entries left to purge.
pub fn dropped_key(id: IndexId) -> Vec<u8> {
    let mut k = head(CATALOG_ID, CATALOG_DROPPED, 4);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Every dropped-index mark.
pub fn dropped_prefix() -> Vec<u8> {
    head(CATALOG_ID, CATALOG_DROPPED, 0)
}

/// The index id at the end of a [`build_key`] or [`dropped_key`].
pub fn catalog_id_after(key: &[u8], prefix: &[u8]) -> Result<IndexId, DecodeError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or(DecodeError("catalog entry outside its prefix"))?;
    let raw: [u8; 4] = rest
        .try_into()
        .map_err(|_| DecodeError("catalog id is not 4 bytes"))?;
    Ok(IndexId::from_be_bytes(raw))
}

/// All entries of index `id`, as `start..end`.
pub fn index_range(id: IndexId) -> (Vec<u8>, Vec<u8>) {
    debug_assert_ne!(id, CATALOG_ID);
    let mut start = vec![TAG_SEARCH];
    start.extend_from_slice(&id.to_be_bytes());
    let mut end = vec![TAG_SEARCH];
    match id.checked_add(1) {
        Some(next) => end.extend_from_slice(&next.to_be_bytes()),
        None => end = vec![TAG_SEARCH + 1],
    }
    (start, end)
}

pub fn stats_key(id: IndexId) -> Vec<u8> {
    head(id, KIND_STATS, 0)
}

/// All entries of one kind of one index; with `field`, of one field.
pub fn kind_prefix(id: IndexId, kind: u8, field: Option<FieldId>) -> Vec<u8> {
    let mut k = head(id, kind, 2);
    if let Some(f) = field {
        k.extend_from_slice(&f.to_be_bytes());
    }
    k
}

pub fn doc_key(id: IndexId, user_key: &[u8]) -> Vec<u8> {
    let mut k = head(id, KIND_DOC, user_key.len());
    k.extend_from_slice(user_key);
    k
}

/// A term (`stem == false`) or stem posting key, or with `user_key` None
/// the prefix of every posting of that exact term.
pub fn posting_key(id: IndexId, stem: bool, term: &str, user_key: Option<&[u8]>) -> Vec<u8> {
    let kind = if stem { KIND_STEM } else { KIND_TERM };
    let tail = user_key.unwrap_or_default();
    let mut k = head(id, kind, 2 * term.len() + 2 + tail.len());
    put_escaped(&mut k, term.as_bytes(), true);
    k.extend_from_slice(tail);
    k
}

/// The prefix of every raw-term posting whose term starts with `prefix`.
pub fn term_prefix_scan(id: IndexId, prefix: &str) -> Vec<u8> {
    let mut k = head(id, KIND_TERM, 2 * prefix.len());
    put_escaped(&mut k, prefix.as_bytes(), false);
    k
}

/// A tag entry key, or with `user_key` None the prefix of every entry of
/// that exact tag; with `exact == false`, of every tag starting with it.
pub fn tag_key(
    id: IndexId,
    field: FieldId,
    tag: &str,
    exact: bool,
    user_key: Option<&[u8]>,
) -> Vec<u8> {
    let tail = user_key.unwrap_or_default();
    let mut k = head(id, KIND_TAG, 2 + 2 * tag.len() + 2 + tail.len());
    k.extend_from_slice(&field.to_be_bytes());
    put_escaped(&mut k, tag.as_bytes(), exact);
    k.extend_from_slice(tail);
    k
}

pub fn numeric_key(id: IndexId, field: FieldId, value: f64, user_key: &[u8]) -> Vec<u8> {
    let mut k = numeric_bound(id, field, value);
    k.extend_from_slice(user_key);
    k
}

/// The key before every numeric entry of `value` (a range scan's bound).
pub fn numeric_bound(id: IndexId, field: FieldId, value: f64) -> Vec<u8> {
    let mut k = head(id, KIND_NUMERIC, 10);
    k.extend_from_slice(&field.to_be_bytes());
    k.extend_from_slice(&crate::codec::ordered_f64(value));
    k
}

pub fn vector_key(id: IndexId, field: FieldId, user_key: &[u8]) -> Vec<u8> {
    let mut k = kind_prefix(id, KIND_VECTOR, Some(field));
    k.extend_from_slice(user_key);
    k
}

/// The user key at the end of an entry key, given the prefix the entry
/// was found under (doc, vector entries: a fixed prefix).
pub fn user_key_after<'a>(key: &'a [u8], prefix: &[u8]) -> Result<&'a [u8], DecodeError> {
    key.strip_prefix(prefix)
        .ok_or(DecodeError("entry outside its scan prefix"))
}

/// (term, user key) of a posting key found under `kind_prefix(id, kind)`.
pub fn split_posting(key: &[u8], id: IndexId, stem: bool) -> Result<(String, &[u8]), DecodeError> {
    let kind = if stem { KIND_STEM } else { KIND_TERM };
    let rest = user_key_after(key, &head(id, kind, 0))?;
    let (term, user_key) = take_escaped(rest)?;
    let term = String::from_utf8(term).map_err(|_| DecodeError("term is not UTF-8"))?;
    Ok((term, user_key))
}

/// The user key of a tag entry found under `kind_prefix(id, TAG, field)`.
pub fn split_tag(key: &[u8], field_prefix: &[u8]) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
    let (tag, user_key) = take_escaped(user_key_after(key, field_prefix)?)?;
    Ok((tag, user_key.to_vec()))
}

/// (value, user key) of a numeric entry found under
/// `kind_prefix(id, NUMERIC, field)`.
pub fn split_numeric<'a>(
    key: &'a [u8],
    field_prefix: &[u8],
) -> Result<(f64, &'a [u8]), DecodeError> {
    let rest = user_key_after(key, field_prefix)?;
    if rest.len() < 8 {
        return Err(DecodeError("numeric entry too short"));
    }
    let (v, user_key) = rest.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(v);
    Ok((crate::codec::from_ordered_f64(b), user_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(definition_key("i"), b"s\0\0\0\0\x01i");
        assert_eq!(next_id_key(), b"s\0\0\0\0\x02");
        assert_eq!(stats_key(7), b"s\0\0\0\x07\x01");
        assert_eq!(doc_key(7, b"k"), b"s\0\0\0\x07\x02k");
        assert_eq!(
            posting_key(7, false, "hi", Some(b"k")),
            b"s\0\0\0\x07\x03hi\0\x01k"
        );
        assert_eq!(
            posting_key(7, true, "a\0", Some(b"k")),
            b"s\0\0\0\x07\x04a\0\xff\0\x01k"
        );
        assert_eq!(
            tag_key(7, 2, "t", true, Some(b"k")),
            b"s\0\0\0\x07\x05\0\x02t\0\x01k"
        );
        assert_eq!(
            numeric_key(7, 2, 1.0, b"k"),
            b"s\0\0\0\x07\x06\0\x02\xbf\xf0\0\0\0\0\0\0k"
        );
        assert_eq!(vector_key(7, 2, b"k"), b"s\0\0\0\x07\x07\0\x02k");
    }

    #[test]
    fn an_index_range_holds_its_entries_and_no_other() {
        let (start, end) = index_range(7);
        for k in [
            stats_key(7),
            doc_key(7, b"\xff\xff"),
            vector_key(7, u16::MAX, b"\xff"),
        ] {
            assert!(start <= k && k < end);
        }
        for k in [stats_key(6), stats_key(8), definition_key("x")] {
            assert!(!(start <= k && k < end));
        }
        let (start, end) = index_range(u32::MAX);
        assert!(start <= stats_key(u32::MAX) && stats_key(u32::MAX) < end);
    }

    #[test]
    fn postings_split_back() {
        let k = posting_key(3, false, "wörd", Some(b"user\0key"));
        assert_eq!(
            split_posting(&k, 3, false).unwrap(),
            ("wörd".to_string(), &b"user\0key"[..])
        );
        assert!(split_posting(&k, 3, true).is_err());
    }
}
