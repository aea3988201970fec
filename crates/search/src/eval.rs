//! Query evaluation over a small read trait, [`IndexRead`], that storage
//! implements on a consistent view (a snapshot) of the data keyspace.
//!
//! Every node evaluates to a set of user keys with a score contribution;
//! AND intersects and adds, OR unites and adds, NOT subtracts (from its
//! AND siblings, or from every document), as RediSearch's iterators do.
//! BM25 is [`crate::score`]'s. A query word expands as in RediSearch: the
//! word itself, its stem among the stem entries (`+run`, always), and the
//! stem as a word (when it differs), each scoring on its own; a phrase and
//! a prefix do not expand.
//! Fields that do not exist, or are of another type, match nothing (as in
//! RediSearch); a KNN vector of the wrong size is an error.
//!
//! Results: by score, highest first, ties by user key ascending; KNN by
//! distance, nearest first, ties by key. Deterministic, and bounded:
//! a query reads at most [`SearchOptions::entries_scanned_max`] entries.

mod matches;
mod text;
mod vectors;

use matches::{Built, Keys, Matches};
pub use text::PostingList;
pub use vectors::VectorList;

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::DecodeError;
use crate::entries::{IndexStats, Indexer, decode_doc_record};
use crate::keys::{self, KIND_DOC, KIND_NUMERIC, KIND_TAG};
use crate::limits::QUERY_ENTRIES_SCANNED_MAX;
use crate::query::{Bound, Node, Query, TagMatch};
use crate::schema::{FieldId, FieldKind};
use crate::score::Bm25;

/// What a query reads. `scan` visits the entries with `start <= key < end`
/// in ascending key order until `visit` returns false.
pub trait IndexRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError>;
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), ReadError>;

    /// A term's decoded postings as this view holds them, if the reader
    /// keeps a cache of them; `list` is the term's posting prefix
    /// ([`keys::posting_key`] without a user key). None: read them.
    fn cached_postings(&self, list: &[u8]) -> Option<Arc<PostingList>> {
        let _ = list;
        None
    }

    /// Offers postings just read from this view to the reader's cache.
    fn keep_postings(&self, list: &[u8], postings: &Arc<PostingList>) {
        let _ = (list, postings);
    }

    /// A vector field's decoded vectors as this view holds them, if the
    /// reader keeps them; `list` is the field's vector prefix.
    fn cached_vectors(&self, list: &[u8]) -> Option<Arc<VectorList>> {
        let _ = list;
        None
    }

    /// Offers vectors just read from this view to the reader's cache.
    fn keep_vectors(&self, list: &[u8], vectors: &Arc<VectorList>) {
        let _ = (list, vectors);
    }

    /// The largest vector list the reader would keep, in bytes: a field's
    /// vectors are gathered into one list only below it (0: never, every
    /// KNN streams the stored vectors).
    fn vectors_kept_size_bytes_max(&self) -> u64 {
        0
    }
}

/// A failed read, as the implementation words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// RediSearch's text.
    #[error(
        "Error parsing vector similarity query: query vector blob size ({got}) does not match index's expected size ({expected})."
    )]
    VectorSize { got: usize, expected: usize },
    /// Strata's (stored vectors are finite, so every distance is too).
    #[error("Error parsing vector similarity query: the query vector holds NaN or infinity")]
    VectorNotFinite,
    #[error("Query reads more than {0} index entries; narrow it")]
    TooManyEntries(u64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOptions {
    pub bm25: Bm25,
    /// LIMIT offset count.
    pub offset: usize,
    pub count: usize,
    pub entries_scanned_max: u64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            bm25: Bm25::STRATA,
            offset: 0,
            count: 10,
            entries_scanned_max: QUERY_ENTRIES_SCANNED_MAX,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub key: Vec<u8>,
    /// BM25 (higher is better), or for KNN the distance (lower is nearer).
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// Documents matched (for KNN: at most k).
    pub total: u64,
    /// The page LIMIT asked for.
    pub hits: Vec<Hit>,
}

/// Runs `query` against index `ix` as `read` sees it.
pub fn search(
    ix: &Indexer,
    read: &impl IndexRead,
    query: &Query,
    opts: &SearchOptions,
) -> Result<SearchResult, EvalError> {
    let stats = match read.get(&keys::stats_key(ix.id))? {
        Some(raw) => IndexStats::decode(&raw)?,
        None => IndexStats::new(ix.def.fields.len()),
    };
    let mut ev = Eval {
        ix,
        read,
        opts,
        avg_len: avg_len(ix, &stats),
        stats,
        scanned: 0,
        universe: None,
        keys: Keys::default(),
        lists: HashMap::new(),
    };
    if let Some(knn) = &query.knn {
        let filter = match query.root {
            Node::All => None,
            ref root => Some(ev.node(root)?.unwrap_or_default()),
        };
        let hits = ev.knn(knn, filter.as_ref())?;
        return Ok(page(hits, opts, |a, b| a.score.total_cmp(&b.score)));
    }
    let set = ev.node(&query.root)?.unwrap_or_default();
    let total = set.len() as u64;
    let hits = set
        .page(opts.offset, opts.count, &ev.keys, |a, b| b.total_cmp(&a))
        .into_iter()
        .map(|(key, score)| Hit { key, score })
        .collect();
    Ok(SearchResult { total, hits })
}

/// The weighted average document length: RediSearch's `avgDocLen`.
fn avg_len(ix: &Indexer, stats: &IndexStats) -> f64 {
    if stats.docs == 0 {
        return 0.0;
    }
    let total: u64 = stats
        .tokens
        .iter()
        .enumerate()
        .map(|(f, &t)| t.saturating_mul(ix.text_weight(f as FieldId, false)))
        .fold(0u64, u64::saturating_add);
    total as f64 / stats.docs as f64
}

/// Sorts by `order` then key, and cuts the LIMIT page (KNN's at most k
/// hits).
fn page(
    mut hits: Vec<Hit>,
    opts: &SearchOptions,
    order: impl Fn(&Hit, &Hit) -> std::cmp::Ordering,
) -> SearchResult {
    let total = hits.len() as u64;
    hits.sort_by(|a, b| order(a, b).then_with(|| a.key.cmp(&b.key)));
    let hits = hits
        .into_iter()
        .skip(opts.offset)
        .take(opts.count)
        .collect();
    SearchResult { total, hits }
}

struct Eval<'a, R> {
    ix: &'a Indexer,
    read: &'a R,
    opts: &'a SearchOptions,
    stats: IndexStats,
    avg_len: f64,
    scanned: u64,
    /// Every document, with its `*` score; loaded once, when needed.
    universe: Option<Matches>,
    /// Where the keys of every match of this query live.
    keys: Keys,
    /// Posting lists this query read, by name: each is read once.
    lists: HashMap<Vec<u8>, Arc<PostingList>>,
}

impl<R: IndexRead> Eval<'_, R> {
    /// Scans `start..end`, counting every entry against the query's limit.
    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, EvalError>,
    ) -> Result<(), EvalError> {
        let max = self.opts.entries_scanned_max;
        let mut scanned = self.scanned;
        let mut failure = None;
        self.read.scan(start, end, &mut |k, v| {
            scanned += 1;
            if scanned > max {
                failure = Some(EvalError::TooManyEntries(max));
                return false;
            }
            match visit(k, v) {
                Ok(go_on) => go_on,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        self.scanned = scanned;
        failure.map_or(Ok(()), Err)
    }

    /// Counts `n` entries read from a cache against the query's limit.
    fn count(&mut self, n: u64) -> Result<(), EvalError> {
        let max = self.opts.entries_scanned_max;
        self.scanned = self.scanned.saturating_add(n);
        if self.scanned > max {
            return Err(EvalError::TooManyEntries(max));
        }
        Ok(())
    }

    fn scan_prefix(
        &mut self,
        prefix: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool, EvalError>,
    ) -> Result<(), EvalError> {
        let end = prefix_end(prefix);
        self.scan(prefix, &end, visit)
    }

    /// None: the node constrains nothing (a word that is a stop word).
    fn node(&mut self, n: &Node) -> Result<Option<Matches>, EvalError> {
        match n {
            Node::All => Ok(Some(self.universe()?)),
            Node::Term { field, word } => self.term(field.as_deref(), word, None),
            Node::Prefix { field, prefix } => self.prefix(field.as_deref(), prefix).map(Some),
            Node::Phrase { field, text } => self.phrase(field.as_deref(), text),
            Node::Tags { field, tags } => self.tags(field, tags).map(Some),
            Node::Range { field, lo, hi } => self.range(field, *lo, *hi).map(Some),
            Node::Not(inner) => {
                let inner = self.node(inner)?.unwrap_or_default();
                let all = self.universe()?;
                Ok(Some(all.minus(&inner, &self.keys).rescored(0.0)))
            }
            Node::And(children) => self.and(children),
            Node::Or(children) => {
                let mut out: Option<Matches> = None;
                for c in children {
                    if let Some(s) = self.node(c)? {
                        out = Some(match out {
                            None => s,
                            Some(acc) => acc.or(&s, &self.keys),
                        });
                    }
                }
                Ok(out)
            }
        }
    }

    /// Intersects the positive children, then removes what the negated
    /// ones match (no need for every document unless all are negated).
    fn and(&mut self, children: &[Node]) -> Result<Option<Matches>, EvalError> {
        let mut acc: Option<Matches> = None;
        let mut negated = Vec::new();
        let (pivot, candidates) = self.and_pivot(children)?;
        for (i, c) in children.iter().enumerate() {
            if let Node::Not(inner) = c {
                negated.push(inner.as_ref());
                continue;
            }
            let found = match (c, &candidates) {
                _ if Some(i) == pivot => candidates.clone(),
                (Node::Term { field, word }, Some(within)) => {
                    self.term(field.as_deref(), word, Some(within))?
                }
                _ => self.node(c)?,
            };
            let Some(s) = found else { continue };
            acc = Some(match acc {
                None => s,
                Some(a) => a.and(&s, &self.keys),
            });
        }
        if negated.is_empty() {
            return Ok(acc);
        }
        let mut acc = match acc {
            Some(a) => a,
            None => self.universe()?.rescored(0.0),
        };
        for inner in negated {
            if let Some(s) = self.node(inner)? {
                acc = acc.minus(&s, &self.keys);
            }
        }
        Ok(Some(acc))
    }

    /// The word of an AND that matches fewest documents, evaluated: the
    /// other words then look up only its documents. None unless at least
    /// two positive children and one word (not a stop word). Children are
    /// still ANDed in their order, so every score is the same sum.
    fn and_pivot(
        &mut self,
        children: &[Node],
    ) -> Result<(Option<usize>, Option<Matches>), EvalError> {
        let positives = children
            .iter()
            .filter(|c| !matches!(c, Node::Not(_)))
            .count();
        if positives < 2 {
            return Ok((None, None));
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, c) in children.iter().enumerate() {
            if let Node::Term { word, .. } = c
                && let Some(size) = self.term_size(word)?
                && best.is_none_or(|(_, s)| size < s)
            {
                best = Some((i, size));
            }
        }
        let Some((i, _)) = best else {
            return Ok((None, None));
        };
        let Node::Term { field, word } = &children[i] else {
            return Ok((None, None));
        };
        let candidates = self.term(field.as_deref(), word, None)?;
        Ok((Some(i), candidates))
    }

    /// Every document, scored as RediSearch scores `*` under BM25STD
    /// (idf 1, frequency 1: shorter documents first).
    fn universe(&mut self) -> Result<Matches, EvalError> {
        if self.universe.is_none() {
            let prefix = keys::kind_prefix(self.ix.id, KIND_DOC, None);
            let (ix, bm25, avg) = (self.ix, self.opts.bm25, self.avg_len);
            let mut all = Built::default();
            self.scan_prefix(&prefix.clone(), |k, v| {
                let key = keys::user_key_after(k, &prefix)?;
                let counts = decode_doc_record(v)?;
                let len: u64 = counts
                    .iter()
                    .enumerate()
                    .map(|(f, &c)| c * ix.text_weight(f as FieldId, false))
                    .sum();
                all.push(key, bm25.term(1.0, 1.0, len, avg));
                Ok(true)
            })?;
            self.universe = Some(self.keys.adopt(all));
        }
        Ok(self.universe.clone().unwrap_or_default())
    }

    fn field_of(&self, name: &str, want: fn(&FieldKind) -> bool) -> Option<FieldId> {
        self.ix
            .def
            .field_id(name)
            .filter(|&f| want(&self.ix.def.fields[usize::from(f)].kind))
    }

    fn tags(&mut self, field: &str, tags: &[TagMatch]) -> Result<Matches, EvalError> {
        let Some(fid) = self.field_of(field, |k| matches!(k, FieldKind::Tag { .. })) else {
            return Ok(Matches::default());
        };
        let case_sensitive = matches!(
            self.ix.def.fields[usize::from(fid)].kind,
            FieldKind::Tag {
                case_sensitive: true,
                ..
            }
        );
        let field_prefix = keys::kind_prefix(self.ix.id, KIND_TAG, Some(fid));
        let mut out = Matches::default();
        for t in tags {
            // As for words: RediSearch expands no prefix shorter than this.
            if t.prefix && t.tag.chars().count() < crate::limits::PREFIX_CHARS_MIN {
                continue;
            }
            let tag = crate::analyze::normalize_tag(&t.tag, case_sensitive);
            let scan = keys::tag_key(self.ix.id, fid, &tag, !t.prefix, None);
            // Each distinct tag value with the keys holding it, in tag order.
            let mut by_tag: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
            self.scan_prefix(&scan, |k, _| {
                let (value, user_key) = keys::split_tag(k, &field_prefix)?;
                match by_tag.last_mut() {
                    Some((v, keys)) if *v == value => keys.push(user_key),
                    _ => by_tag.push((value, vec![user_key])),
                }
                Ok(true)
            })?;
            // As RediSearch's BM25STD: a tag is a term with frequency 1 in
            // a document of its TEXT length; `{a|b}` sums the tags a
            // document has; a prefix counts its first tag only (RediSearch's
            // prefix union stops at the first child that has the document).
            let mut this = Matches::default();
            for (_, keys) in &by_tag {
                let idf = Bm25::idf(self.stats.docs, keys.len() as u64);
                let mut one = Built::default();
                for key in keys {
                    let score = self
                        .opts
                        .bm25
                        .term(idf, 1.0, self.doc_len(key)?, self.avg_len);
                    one.push(key, score);
                }
                let one = self.keys.adopt(one);
                this = if t.prefix {
                    this.or_first(&one, &self.keys)
                } else {
                    this.or(&one, &self.keys)
                };
            }
            out = out.or(&this, &self.keys);
        }
        Ok(out)
    }

    /// A document's weighted TEXT length (its doc record), 0 if it has none.
    fn doc_len(&self, user_key: &[u8]) -> Result<u64, EvalError> {
        let Some(raw) = self.read.get(&keys::doc_key(self.ix.id, user_key))? else {
            return Ok(0);
        };
        let counts = decode_doc_record(&raw)?;
        Ok(counts
            .iter()
            .enumerate()
            .map(|(f, &c)| c * self.ix.text_weight(f as FieldId, false))
            .sum())
    }

    fn range(&mut self, field: &str, lo: Bound, hi: Bound) -> Result<Matches, EvalError> {
        let Some(fid) = self.field_of(field, |k| matches!(k, FieldKind::Numeric)) else {
            return Ok(Matches::default());
        };
        let field_prefix = keys::kind_prefix(self.ix.id, KIND_NUMERIC, Some(fid));
        let start = keys::numeric_bound(self.ix.id, fid, lo.value);
        let end = prefix_end(&field_prefix);
        let mut out = Vec::new();
        self.scan(&start, &end, |k, _| {
            let (v, user_key) = keys::split_numeric(k, &field_prefix)?;
            if v > hi.value || (v == hi.value && !hi.inclusive) {
                return Ok(false);
            }
            if v > lo.value || lo.inclusive {
                out.push((user_key.to_vec(), 0.0));
            }
            Ok(true)
        })?;
        Ok(self.keys.adopt(Built::from_unsorted(out)))
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xFF (never: every prefix starts with the tag byte): no bound.
    vec![0xFF; prefix.len() + 1]
}
