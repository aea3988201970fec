//! The heart of index-as-data: for one key's old and new value, the exact
//! entries to delete and to put, and the statistics delta.
//!
//! [`Indexer::changes`] is what storage's `apply` calls for every index
//! that covers a written key, in the same batch as the record: entries of
//! the old value that the new one does not have are deleted, entries that
//! are new or changed are put, and equal entries are left alone (a SET of
//! the same value writes nothing to the index). It is a pure function of
//! (definition, user key, old value, new value, embeddings): the same
//! bytes on every replica, and a delete finds exactly what the write put,
//! because it recomputes the entries from the old value with the same
//! analyzer ([`crate::schema::ANALYZER_VERSION`]).
//!
//! Values (docs/format.md, "Search"): varints unless said otherwise.
//! - doc record (`s id 02 key`): field count, then per field its token
//!   count (0 for a field that is not TEXT or absent).
//! - term posting (`s id 03 term key`): the document's weighted length,
//!   then per field holding the term, ascending: field id, tf, then tf
//!   positions (the first, then gaps of at least 1).
//! - stem posting (`s id 04 stem key`): the weighted length, then per
//!   field: field id, tf.
//! - tag and numeric entries: empty. Vector entries: FLOAT32 LE x dim.
//! - statistics (`s id 01`): format 1 (one byte), documents, skipped
//!   values, field count, then per field its total token count.

use std::collections::BTreeMap;

use crate::analyze::{Analyzer, Token};
use crate::codec::{DecodeError, Reader, put_varint};
use crate::document::{Document, Extracted, FieldValue, extract};
use crate::keys;
use crate::limits::{FIELDS_MAX, TOKENS_PER_FIELD_MAX};
use crate::schema::{FieldId, FieldKind, IndexDef, IndexId};

/// RediSearch's `STEM_TOKEN_FACTOR`: a stem counts a fifth of its word.
pub const STEM_WEIGHT_FACTOR: f64 = 0.2;

/// A value as given to [`Indexer::changes`].
#[derive(Clone, Copy, Debug)]
pub struct DocInput<'a> {
    pub value: &'a [u8],
    /// Vectors the server computed for `EMBED` fields, by field id. A
    /// write that carries none leaves its `EMBED` fields absent.
    pub embeddings: &'a [(FieldId, Vec<f32>)],
}

impl<'a> DocInput<'a> {
    pub fn plain(value: &'a [u8]) -> Self {
        DocInput {
            value,
            embeddings: &[],
        }
    }
}

/// What one write does to one index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Keys to remove, ascending.
    pub deletes: Vec<Vec<u8>>,
    /// Keys to insert or overwrite, ascending.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// To add to the index's [`IndexStats`] (one stats key per index,
    /// written once per group by storage).
    pub stats: StatsDelta,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.puts.is_empty() && self.stats.is_zero()
    }
}

/// A change to an index's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsDelta {
    pub docs: i64,
    pub skipped: i64,
    /// Per field id: token count change (TEXT fields only).
    pub tokens: Vec<i64>,
}

impl StatsDelta {
    pub fn is_zero(&self) -> bool {
        self.docs == 0 && self.skipped == 0 && self.tokens.iter().all(|&t| t == 0)
    }

    fn minus(mut self, other: &StatsDelta) -> StatsDelta {
        self.docs -= other.docs;
        self.skipped -= other.skipped;
        for (a, b) in self.tokens.iter_mut().zip(&other.tokens) {
            *a -= b;
        }
        self
    }
}

/// An index's statistics, exact, kept by the writer: what BM25 and
/// FT.INFO read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Documents with entries.
    pub docs: u64,
    /// Covered values that have none (not UTF-8, not JSON, too large).
    pub skipped: u64,
    /// Per field id: tokens indexed, over all documents.
    pub tokens: Vec<u64>,
}

const STATS_FORMAT: u8 = 1;

impl IndexStats {
    pub fn new(fields: usize) -> Self {
        IndexStats {
            docs: 0,
            skipped: 0,
            tokens: vec![0; fields],
        }
    }

    /// Adds `delta`. Saturating: statistics that disagree with the entries
    /// (they cannot, short of corruption) must not take the writer down;
    /// debug builds assert.
    pub fn apply(&mut self, delta: &StatsDelta) {
        fn add(v: &mut u64, d: i64) {
            debug_assert!(
                d >= 0 || v.checked_sub(d.unsigned_abs()).is_some(),
                "stats underflow"
            );
            *v = if d >= 0 {
                v.saturating_add(d as u64)
            } else {
                v.saturating_sub(d.unsigned_abs())
            };
        }
        add(&mut self.docs, delta.docs);
        add(&mut self.skipped, delta.skipped);
        if self.tokens.len() < delta.tokens.len() {
            self.tokens.resize(delta.tokens.len(), 0);
        }
        for (t, &d) in self.tokens.iter_mut().zip(&delta.tokens) {
            add(t, d);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATS_FORMAT];
        put_varint(&mut out, self.docs);
        put_varint(&mut out, self.skipped);
        put_varint(&mut out, self.tokens.len() as u64);
        for &t in &self.tokens {
            put_varint(&mut out, t);
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<IndexStats, DecodeError> {
        let mut r = Reader::new(raw);
        if r.u8()? != STATS_FORMAT {
            return Err(DecodeError("unknown statistics format"));
        }
        let docs = r.varint()?;
        let skipped = r.varint()?;
        let n = r.varint_max(FIELDS_MAX as u64)? as usize;
        let tokens = (0..n).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(IndexStats {
            docs,
            skipped,
            tokens,
        })
    }
}

/// How much one occurrence of a word counts in a field of weight `weight`:
/// RediSearch's `MAX(1, (uint32_t)(float)weight)` (truncated, at least 1),
/// or for a stem, of a fifth of it.
pub fn occurrence_weight(weight: f64, stem: bool) -> u64 {
    let w = weight as f32;
    let w = if stem {
        (f64::from(w) * STEM_WEIGHT_FACTOR) as f32
    } else {
        w
    };
    (w as u64).max(1)
}

/// One index, ready to compute entries: built once per definition (storage
/// keeps one per index, next to the decoded definition).
pub struct Indexer {
    pub id: IndexId,
    pub def: IndexDef,
    pub analyzer: Analyzer,
}

/// A document's entries and what it adds to the statistics.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

impl Indexer {
    pub fn new(id: IndexId, def: IndexDef) -> Self {
        debug_assert_ne!(id, keys::CATALOG_ID);
        let analyzer = Analyzer::new(def.language);
        Indexer { id, def, analyzer }
    }

    /// What writing `new` over `old` at `user_key` does to this index
    /// (None: the key is absent, before or after). Keys the index does
    /// not cover change nothing.
    pub fn changes(
        &self,
        user_key: &[u8],
        old: Option<DocInput>,
        new: Option<DocInput>,
    ) -> Changes {
        if !self.def.covers(user_key) {
            return Changes::default();
        }
        let (old_entries, old_stats) = self.entries(user_key, old);
        let (mut new_entries, new_stats) = self.entries(user_key, new);
        let mut deletes = Vec::new();
        for (k, v) in old_entries {
            match new_entries.get(&k) {
                None => deletes.push(k),
                Some(nv) if *nv == v => {
                    new_entries.remove(&k);
                }
                Some(_) => {}
            }
        }
        let puts: Vec<_> = new_entries.into_iter().collect();
        debug_assert!(deletes.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(
            deletes
                .iter()
                .all(|d| puts.binary_search_by(|(k, _)| k.cmp(d)).is_err())
        );
        Changes {
            deletes,
            puts,
            stats: new_stats.minus(&old_stats),
        }
    }

    /// Every entry of the document `doc` makes at `user_key` (none if
    /// absent, skipped or not covered), and its statistics contribution.
    pub fn entries(&self, user_key: &[u8], doc: Option<DocInput>) -> (Entries, StatsDelta) {
        let mut stats = StatsDelta {
            docs: 0,
            skipped: 0,
            tokens: vec![0; self.def.fields.len()],
        };
        let mut out = Entries::new();
        let Some(input) = doc.filter(|_| self.def.covers(user_key)) else {
            return (out, stats);
        };
        match extract(&self.def, input.value, input.embeddings) {
            Extracted::Skipped(_) => stats.skipped = 1,
            Extracted::Indexed(doc) => {
                stats.docs = 1;
                self.document_entries(user_key, &doc, &mut out, &mut stats);
            }
        }
        (out, stats)
    }

    fn document_entries(
        &self,
        user_key: &[u8],
        doc: &Document,
        out: &mut Entries,
        stats: &mut StatsDelta,
    ) {
        let id = self.id;
        let mut texts: Vec<(FieldId, Vec<Token>)> = Vec::new();
        for (i, (field, value)) in self.def.fields.iter().zip(&doc.fields).enumerate() {
            let fid = i as FieldId;
            match (&field.kind, value) {
                (FieldKind::Text { nostem, .. }, Some(FieldValue::Text(parts))) => {
                    let tokens = self.field_tokens(parts, !nostem);
                    stats.tokens[i] = tokens.len() as i64;
                    texts.push((fid, tokens));
                }
                (FieldKind::Tag { .. }, Some(FieldValue::Tags(tags))) => {
                    for t in tags {
                        out.insert(keys::tag_key(id, fid, t, true, Some(user_key)), Vec::new());
                    }
                }
                (FieldKind::Numeric, Some(FieldValue::Numeric(n))) => {
                    out.insert(keys::numeric_key(id, fid, *n, user_key), Vec::new());
                }
                (FieldKind::Vector(_), Some(FieldValue::Vector(v))) => {
                    let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    out.insert(keys::vector_key(id, fid, user_key), bytes);
                }
                _ => {}
            }
        }
        let doc_len = self.weighted_length(&texts);
        self.postings(user_key, &texts, doc_len, out);
        let mut record = Vec::new();
        put_varint(&mut record, self.def.fields.len() as u64);
        for &t in &stats.tokens {
            put_varint(&mut record, t as u64);
        }
        out.insert(keys::doc_key(id, user_key), record);
    }

    /// A field's tokens over its texts (a JSON array gives several): the
    /// positions go on from one text to the next with a gap of one, so a
    /// phrase never spans two texts.
    fn field_tokens(&self, parts: &[String], stem: bool) -> Vec<Token> {
        let mut out: Vec<Token> = Vec::new();
        for part in parts {
            let base = out.last().map_or(0, |t| t.position + 2);
            for mut t in self.analyzer.tokens(part, stem) {
                if out.len() == TOKENS_PER_FIELD_MAX {
                    return out;
                }
                t.position += base;
                out.push(t);
            }
        }
        out
    }

    /// RediSearch's document length: every kept word counts its field's
    /// occurrence weight.
    fn weighted_length(&self, texts: &[(FieldId, Vec<Token>)]) -> u64 {
        texts
            .iter()
            .map(|(f, tokens)| tokens.len() as u64 * self.text_weight(*f, false))
            .sum()
    }

    /// The occurrence weight of a TEXT field (1 for any other).
    pub fn text_weight(&self, field: FieldId, stem: bool) -> u64 {
        match self.def.fields.get(usize::from(field)).map(|f| &f.kind) {
            Some(FieldKind::Text { weight, .. }) => occurrence_weight(*weight, stem),
            _ => 1,
        }
    }

    fn postings(
        &self,
        user_key: &[u8],
        texts: &[(FieldId, Vec<Token>)],
        doc_len: u64,
        out: &mut Entries,
    ) {
        let mut terms: BTreeMap<&str, Vec<(FieldId, Vec<u32>)>> = BTreeMap::new();
        let mut stems: BTreeMap<&str, Vec<(FieldId, u32)>> = BTreeMap::new();
        for (field, tokens) in texts {
            for t in tokens {
                let e = terms.entry(&t.term).or_default();
                match e.last_mut() {
                    Some((f, positions)) if f == field => positions.push(t.position),
                    _ => e.push((*field, vec![t.position])),
                }
                if let Some(s) = &t.stem {
                    let e = stems.entry(s).or_default();
                    match e.last_mut() {
                        Some((f, tf)) if f == field => *tf += 1,
                        _ => e.push((*field, 1)),
                    }
                }
            }
        }
        for (term, fields) in terms {
            let posting = Posting {
                doc_len,
                fields: fields
                    .into_iter()
                    .map(|(f, p)| (f, p.len() as u32, p))
                    .collect(),
            };
            out.insert(
                keys::posting_key(self.id, false, term, Some(user_key)),
                posting.encode(),
            );
        }
        for (stem, fields) in stems {
            let posting = Posting {
                doc_len,
                fields: fields
                    .into_iter()
                    .map(|(f, tf)| (f, tf, Vec::new()))
                    .collect(),
            };
            out.insert(
                keys::posting_key(self.id, true, stem, Some(user_key)),
                posting.encode(),
            );
        }
    }
}

/// A decoded posting: the document's weighted length, and per field (id
/// ascending) the term frequency and, for raw terms, the positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub doc_len: u64,
    pub fields: Vec<(FieldId, u32, Vec<u32>)>,
}

impl Posting {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, self.doc_len);
        for (field, tf, positions) in &self.fields {
            debug_assert!(*tf >= 1 && (positions.is_empty() || positions.len() == *tf as usize));
            put_varint(&mut out, u64::from(*field));
            put_varint(&mut out, u64::from(*tf));
            let mut prev = 0;
            for (i, &p) in positions.iter().enumerate() {
                debug_assert!(i == 0 || p > prev);
                put_varint(&mut out, u64::from(if i == 0 { p } else { p - prev }));
                prev = p;
            }
        }
        out
    }

    /// Strict; `positions` says whether this is a term posting (positions
    /// follow every tf) or a stem posting (none).
    pub fn decode(raw: &[u8], positions: bool) -> Result<Posting, DecodeError> {
        let mut r = Reader::new(raw);
        let doc_len = r.varint()?;
        let mut fields: Vec<(FieldId, u32, Vec<u32>)> = Vec::new();
        while !r.is_empty() {
            let field = r.varint_max(FIELDS_MAX as u64 - 1)? as FieldId;
            if fields.last().is_some_and(|(f, _, _)| *f >= field) {
                return Err(DecodeError("posting fields out of order"));
            }
            let tf = r.varint_max(TOKENS_PER_FIELD_MAX as u64)? as u32;
            if tf == 0 {
                return Err(DecodeError("posting with a zero frequency"));
            }
            let mut ps = Vec::new();
            if positions {
                ps = Vec::with_capacity(tf as usize);
                let mut p = 0u64;
                for i in 0..tf {
                    let d = r.varint_max(u64::from(u32::MAX))?;
                    if i > 0 && d == 0 {
                        return Err(DecodeError("positions out of order"));
                    }
                    p = p
                        .checked_add(d)
                        .filter(|&p| p <= u64::from(u32::MAX))
                        .ok_or(DecodeError("position overflow"))?;
                    ps.push(p as u32);
                }
            }
            fields.push((field, tf, ps));
        }
        if fields.is_empty() {
            return Err(DecodeError("posting without fields"));
        }
        Ok(Posting { doc_len, fields })
    }
}

/// A doc record: per field id, its token count.
pub fn decode_doc_record(raw: &[u8]) -> Result<Vec<u64>, DecodeError> {
    let mut r = Reader::new(raw);
    let n = r.varint_max(FIELDS_MAX as u64)? as usize;
    let counts = (0..n)
        .map(|_| r.varint_max(TOKENS_PER_FIELD_MAX as u64))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(counts)
}
