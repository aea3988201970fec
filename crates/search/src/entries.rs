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

mod build;

use std::collections::BTreeMap;
use std::sync::{Mutex, TryLockError};

use crate::analyze::Analyzer;
use crate::codec::{DecodeError, Reader, put_varint};
use crate::document::{Extracted, extract};
use crate::keys;
use crate::limits::{FIELDS_MAX, TOKENS_PER_FIELD_MAX};
use crate::schema::{FieldId, FieldKind, IndexDef, IndexId};
use build::{DocEntries, Scratch, full_key};

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
    /// Buffers [`Indexer::changes`] reuses from one write to the next
    /// (growing them was a tenth of its cost); a caller that finds them
    /// in use takes fresh ones.
    buffers: Mutex<Buffers>,
}

/// What one [`Indexer::changes`] builds: both documents' entries.
#[derive(Default)]
struct Buffers {
    scratch: Scratch,
    old: DocEntries,
    new: DocEntries,
}

/// Bytes of buffers an indexer keeps between writes: one large document
/// must not pin its buffers' memory for good.
const BUFFERS_RETAINED_SIZE_BYTES_MAX: usize = 1 << 20;

/// A document's entries and what it adds to the statistics.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

impl Indexer {
    pub fn new(id: IndexId, def: IndexDef) -> Self {
        debug_assert_ne!(id, keys::CATALOG_ID);
        let analyzer = Analyzer::new(def.language);
        Indexer {
            id,
            def,
            analyzer,
            buffers: Mutex::new(Buffers::default()),
        }
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
        let mut guard = match self.buffers.try_lock() {
            Ok(g) => Some(g),
            // Poisoned: a panic mid-write left buffers that are cleared
            // before use anyway.
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let mut fresh = Buffers::default();
        let b = guard.as_deref_mut().unwrap_or(&mut fresh);
        let old_stats = self.doc_entries(user_key, old, &mut b.scratch, &mut b.old);
        let new_stats = self.doc_entries(user_key, new, &mut b.scratch, &mut b.new);
        let (deletes, puts) = self.diff(user_key, &b.old, &b.new);
        if b.scratch.size_bytes() + b.old.size_bytes() + b.new.size_bytes()
            > BUFFERS_RETAINED_SIZE_BYTES_MAX
        {
            *b = Buffers::default();
        }
        debug_assert!(deletes.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(puts.windows(2).all(|w| w[0].0 < w[1].0));
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

    /// Old entries the new ones lack (deletes), and new or changed ones
    /// (puts), each ascending: a merge of the two sorted lists, which
    /// builds full keys only for what changes.
    #[allow(clippy::type_complexity)]
    fn diff(
        &self,
        user_key: &[u8],
        old: &DocEntries,
        new: &DocEntries,
    ) -> (Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>) {
        use std::cmp::Ordering;
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            let order = match (i < old.len(), j < new.len()) {
                (false, false) => break,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (true, true) => old.key(i).cmp(new.key(j)),
            };
            match order {
                Ordering::Less => {
                    deletes.push(full_key(self.id, old.key(i), user_key));
                    i += 1;
                }
                Ordering::Greater => {
                    puts.push((
                        full_key(self.id, new.key(j), user_key),
                        new.value(j).to_vec(),
                    ));
                    j += 1;
                }
                Ordering::Equal => {
                    if old.value(i) != new.value(j) {
                        puts.push((
                            full_key(self.id, new.key(j), user_key),
                            new.value(j).to_vec(),
                        ));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        (deletes, puts)
    }

    /// Every entry of the document `doc` makes at `user_key` (none if
    /// absent, skipped or not covered), and its statistics contribution.
    pub fn entries(&self, user_key: &[u8], doc: Option<DocInput>) -> (Entries, StatsDelta) {
        let mut built = DocEntries::default();
        let stats = self.doc_entries(user_key, doc, &mut Scratch::default(), &mut built);
        let out = (0..built.len())
            .map(|i| {
                let key = full_key(self.id, built.key(i), user_key);
                (key, built.value(i).to_vec())
            })
            .collect();
        (out, stats)
    }

    /// [`Indexer::entries`] into `out` (cleared), without the keys' shared
    /// head and user key (see [`DocEntries`]).
    fn doc_entries(
        &self,
        user_key: &[u8],
        doc: Option<DocInput>,
        scratch: &mut Scratch,
        out: &mut DocEntries,
    ) -> StatsDelta {
        let mut stats = StatsDelta {
            docs: 0,
            skipped: 0,
            tokens: vec![0; self.def.fields.len()],
        };
        out.clear();
        let Some(input) = doc.filter(|_| self.def.covers(user_key)) else {
            return stats;
        };
        match extract(&self.def, input.value, input.embeddings) {
            Extracted::Skipped(_) => stats.skipped = 1,
            Extracted::Indexed(doc) => {
                stats.docs = 1;
                self.build(&doc, scratch, out, &mut stats);
            }
        }
        stats
    }

    /// The occurrence weight of a TEXT field (1 for any other).
    pub fn text_weight(&self, field: FieldId, stem: bool) -> u64 {
        match self.def.fields.get(usize::from(field)).map(|f| &f.kind) {
            Some(FieldKind::Text { weight, .. }) => occurrence_weight(*weight, stem),
            _ => 1,
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
