//! Full-text nodes: words (with their stem expansions), prefixes and
//! phrases, scored with BM25.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::matches::{Built, KeyArena};
use super::{Eval, EvalError, IndexRead, Matches};
use crate::codec::{DecodeError, Reader};
use crate::entries::Posting;
use crate::keys::{self, KIND_TERM};
use crate::limits::{FIELDS_MAX, PREFIX_CHARS_MIN, PREFIX_EXPANSIONS_MAX, TOKENS_PER_FIELD_MAX};
use crate::schema::{FieldId, FieldKind};
use crate::score::Bm25;

/// Which fields a word may be in: all TEXT fields, or the one named (an
/// unknown or non-TEXT field: none).
#[derive(Clone, Copy)]
enum Fields {
    Any,
    One(FieldId),
    None,
}

impl Fields {
    /// Whether a posting with a bit per field in `fields` passes.
    fn admits_any(self, fields: u128) -> bool {
        match self {
            Fields::Any => true,
            Fields::One(f) => fields & (1u128 << f) != 0,
            Fields::None => false,
        }
    }

    fn admits(self, posting: &Posting) -> bool {
        match self {
            Fields::Any => true,
            Fields::One(f) => posting.fields.iter().any(|(g, _, _)| *g == f),
            Fields::None => false,
        }
    }
}

/// One term's postings with positions (for phrases): user key to posting.
type Positional = BTreeMap<Vec<u8>, Posting>;

/// One term's postings, decoded for scoring (positions left out), in
/// user-key order: what a query reads of a term, and what a reader may
/// cache ([`IndexRead::cached_postings`]). Nothing in it depends on the
/// query or on the index's statistics, only on the term's entries.
#[derive(Clone, Debug, Default)]
pub struct PostingList {
    keys: KeyArena,
    /// Per posting: the document's weighted length.
    doc_len: Vec<u64>,
    /// Per posting: the term's weighted frequency over all fields.
    freq: Vec<u64>,
    /// Per posting: a bit per field holding the term; empty when every
    /// posting has `same_fields` (always, in an index of one TEXT field).
    fields: Vec<u128>,
    same_fields: u128,
}

impl PostingList {
    /// Postings: the term's document frequency.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Bytes held, for a cache's bound.
    pub fn size_bytes(&self) -> usize {
        self.keys.size_bytes()
            + self.doc_len.capacity() * 8
            + self.freq.capacity() * 8
            + self.fields.capacity() * 16
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        self.keys.get(i)
    }

    pub(crate) fn key_bytes(&self) -> &[u8] {
        self.keys.bytes()
    }

    pub(crate) fn key_span(&self, i: usize) -> (usize, u32) {
        self.keys.span(i)
    }

    fn fields_of(&self, i: usize) -> u128 {
        self.fields.get(i).copied().unwrap_or(self.same_fields)
    }

    fn push(&mut self, key: &[u8], facts: Facts) {
        debug_assert!(self.is_empty() || self.key(self.len() - 1) < key);
        if self.is_empty() {
            self.same_fields = facts.fields;
        } else if self.fields.is_empty() && facts.fields != self.same_fields {
            // The first posting that differs: from now on, one per posting.
            self.fields = vec![self.same_fields; self.len()];
        }
        if !self.fields.is_empty() {
            self.fields.push(facts.fields);
        }
        self.keys.push(key);
        self.doc_len.push(facts.doc_len);
        self.freq.push(facts.freq);
    }

    fn shrink(mut self) -> Self {
        self.keys.shrink_to_fit();
        self.doc_len.shrink_to_fit();
        self.freq.shrink_to_fit();
        self.fields.shrink_to_fit();
        self
    }
}

/// What scoring needs of one posting.
#[derive(Clone, Copy)]
struct Facts {
    doc_len: u64,
    freq: u64,
    fields: u128,
}

impl<R: IndexRead> Eval<'_, R> {
    fn fields(&self, field: Option<&str>) -> Fields {
        match field {
            None => Fields::Any,
            Some(name) => match self.field_of(name, |k| matches!(k, FieldKind::Text { .. })) {
                Some(f) => Fields::One(f),
                None => Fields::None,
            },
        }
    }

    /// Every posting of one exact term (raw or stem), from the reader's
    /// cache or read from the view (and offered to the cache). All of them,
    /// whatever the field filter: the term's document frequency (its idf)
    /// counts every document that holds it, as in RediSearch. A cached list
    /// counts against the query's entry limit as if it were read.
    fn postings(&mut self, term: &str, stem: bool) -> Result<Arc<PostingList>, EvalError> {
        let prefix = keys::posting_key(self.ix.id, stem, term, None);
        if let Some(list) = self.lists.get(&prefix) {
            return Ok(list.clone());
        }
        let list = self.read_postings(prefix.clone(), stem)?;
        self.lists.insert(prefix, list.clone());
        Ok(list)
    }

    fn read_postings(
        &mut self,
        prefix: Vec<u8>,
        stem: bool,
    ) -> Result<Arc<PostingList>, EvalError> {
        if let Some(list) = self.read.cached_postings(&prefix) {
            self.count(list.len() as u64)?;
            return Ok(list);
        }
        let ix = self.ix;
        let mut list = PostingList::default();
        self.scan_prefix(&prefix.clone(), |k, v| {
            let key = keys::user_key_after(k, &prefix)?;
            list.push(key, posting_facts(v, !stem, |f| ix.text_weight(f, stem))?);
            Ok(true)
        })?;
        let list = Arc::new(list.shrink());
        self.read.keep_postings(&prefix, &list);
        Ok(list)
    }

    /// BM25 of one term's postings that pass the field filter: `f` counts
    /// every field of the document, each occurrence with its field's weight.
    fn score(
        &mut self,
        list: &Arc<PostingList>,
        fields: Fields,
        within: Option<&Matches>,
    ) -> Matches {
        let idf = Bm25::idf(self.stats.docs, list.len() as u64);
        let (bm25, avg) = (self.opts.bm25, self.avg_len);
        let score = |i: usize| {
            fields
                .admits_any(list.fields_of(i))
                .then(|| bm25.term(idf, list.freq[i] as f64, list.doc_len[i], avg))
        };
        match within {
            Some(within) => self.keys.of_list_within(list, within, score),
            None => {
                let scored = (0..list.len()).filter_map(|i| score(i).map(|s| (i, s)));
                self.keys.of_list(list, scored)
            }
        }
    }

    /// What a word reads: per analyzed term (usually one), its
    /// expansions, each a (term, is a stem entry) list: itself, `stem`
    /// (when it differs) and `+stem` (always:
    /// [`crate::analyze::Analyzer::query_stem`]).
    fn expansions(&self, word: &str) -> Vec<Vec<(String, bool)>> {
        self.ix
            .analyzer
            .query_terms(word)
            .into_iter()
            .map(|term| {
                let mut out = vec![(term.clone(), false)];
                if let Some(s) = self.ix.analyzer.query_stem(&term) {
                    if s != term {
                        out.push((s.clone(), false));
                    }
                    out.push((s, true));
                }
                out
            })
            .collect()
    }

    /// At least as many documents as the word matches (None: a stop word,
    /// which matches no constraint): what AND starts from.
    pub(super) fn term_size(&mut self, word: &str) -> Result<Option<usize>, EvalError> {
        let mut size: Option<usize> = None;
        for expansions in self.expansions(word) {
            let mut union = 0usize;
            for (t, is_stem) in expansions {
                union = union.saturating_add(self.postings(&t, is_stem)?.len());
            }
            size = Some(size.map_or(union, |s| s.min(union)));
        }
        Ok(size)
    }

    /// A word: each of its analyzed terms, ANDed; each term's expansions
    /// ORed. With `within`, only documents `within` holds are looked up
    /// (an AND's other side): the same matches and scores among them.
    pub(super) fn term(
        &mut self,
        field: Option<&str>,
        word: &str,
        within: Option<&Matches>,
    ) -> Result<Option<Matches>, EvalError> {
        let fields = self.fields(field);
        let mut acc: Option<Matches> = None;
        for expansions in self.expansions(word) {
            let mut union: Option<Matches> = None;
            for (t, is_stem) in expansions {
                let list = self.postings(&t, is_stem)?;
                let scored = self.score(&list, fields, within);
                union = Some(match union {
                    None => scored,
                    Some(u) => u.or(&scored, &self.keys),
                });
            }
            let union = union.unwrap_or_default();
            acc = Some(match acc {
                None => union,
                Some(a) => a.and(&union, &self.keys),
            });
        }
        Ok(acc)
    }

    /// `pre*`: the raw terms starting with `pre` (lower case, at least
    /// [`PREFIX_CHARS_MIN`] characters, at most [`PREFIX_EXPANSIONS_MAX`]
    /// terms, in term order), each scored as a term.
    pub(super) fn prefix(
        &mut self,
        field: Option<&str>,
        prefix: &str,
    ) -> Result<Matches, EvalError> {
        let prefix = prefix.to_lowercase();
        if prefix.chars().count() < PREFIX_CHARS_MIN || prefix.contains('\0') {
            return Ok(Matches::default());
        }
        let fields = self.fields(field);
        let scan = keys::term_prefix_scan(self.ix.id, &prefix);
        let ix = self.ix;
        let mut by_term: Vec<(String, PostingList)> = Vec::new();
        self.scan_prefix(&scan, |k, v| {
            let (term, user_key) = keys::split_posting(k, ix.id, false)?;
            if by_term.last().is_none_or(|(t, _)| *t != term) {
                if by_term.len() == PREFIX_EXPANSIONS_MAX {
                    return Ok(false);
                }
                by_term.push((term, PostingList::default()));
            }
            let facts = posting_facts(v, true, |f| ix.text_weight(f, false))?;
            if let Some((_, list)) = by_term.last_mut() {
                list.push(user_key, facts);
            }
            Ok(true)
        })?;
        debug_assert!(scan.starts_with(&keys::kind_prefix(ix.id, KIND_TERM, None)));
        // As RediSearch: a document is scored by the first term (in term
        // order) it holds, not the sum (its prefix union stops at the
        // first child that has the document).
        let mut out = Matches::default();
        for (_, list) in by_term {
            let scored = self.score(&Arc::new(list), fields, None);
            out = out.or_first(&scored, &self.keys);
        }
        Ok(out)
    }

    /// Every posting of one raw term, with positions, that passes the
    /// field filter; and the term's document frequency.
    fn positional(&mut self, term: &str, fields: Fields) -> Result<(u64, Positional), EvalError> {
        let prefix = keys::posting_key(self.ix.id, false, term, None);
        let mut out = Positional::new();
        let mut df = 0u64;
        self.scan_prefix(&prefix.clone(), |k, v| {
            let key = keys::user_key_after(k, &prefix)?;
            let posting = Posting::decode(v, true)?;
            df += 1;
            if fields.admits(&posting) {
                out.insert(key.to_vec(), posting);
            }
            Ok(true)
        })?;
        Ok((df, out))
    }

    /// `"a b c"`: raw terms (no stems) at consecutive positions of one
    /// field; scored as the sum of the terms' BM25.
    pub(super) fn phrase(
        &mut self,
        field: Option<&str>,
        text: &str,
    ) -> Result<Option<Matches>, EvalError> {
        let fields = self.fields(field);
        let terms = self.ix.analyzer.query_terms(text);
        if terms.is_empty() {
            return Ok(None);
        }
        let mut lists = Vec::with_capacity(terms.len());
        for t in &terms {
            lists.push(self.positional(t, fields)?);
        }
        let mut out = Built::default();
        let (first_df, first) = &lists[0];
        'docs: for (key, p0) in first {
            let mut postings = vec![p0];
            for (_, l) in &lists[1..] {
                match l.get(key) {
                    Some(p) => postings.push(p),
                    None => continue 'docs,
                }
            }
            if !adjacent(&postings, fields) {
                continue;
            }
            let mut score = 0.0;
            for (i, p) in postings.iter().enumerate() {
                let df = if i == 0 { *first_df } else { lists[i].0 };
                let f: u64 = p
                    .fields
                    .iter()
                    .map(|(fid, tf, _)| u64::from(*tf) * self.ix.text_weight(*fid, false))
                    .sum();
                let idf = Bm25::idf(self.stats.docs, df);
                score += self.opts.bm25.term(idf, f as f64, p.doc_len, self.avg_len);
            }
            out.push(key, score);
        }
        Ok(Some(self.keys.adopt(out)))
    }
}

/// A posting's scoring facts, read in place: no positions are kept,
/// which is what makes a common word's 100,000 postings cheap to score.
/// As strict as [`Posting::decode`] (the format is in `crate::entries`).
fn posting_facts(
    raw: &[u8],
    positions: bool,
    weight: impl Fn(FieldId) -> u64,
) -> Result<Facts, DecodeError> {
    let mut r = Reader::new(raw);
    let doc_len = r.varint()?;
    let (mut fields, mut freq, mut last) = (0u128, 0u64, None);
    while !r.is_empty() {
        let field = r.varint_max(FIELDS_MAX as u64 - 1)? as FieldId;
        if last.is_some_and(|l| l >= field) {
            return Err(DecodeError("posting fields out of order"));
        }
        last = Some(field);
        let tf = r.varint_max(TOKENS_PER_FIELD_MAX as u64)?;
        if tf == 0 {
            return Err(DecodeError("posting with a zero frequency"));
        }
        if positions {
            skip_positions(&mut r, tf)?;
        }
        fields |= 1u128 << field;
        freq = freq.saturating_add(tf.saturating_mul(weight(field)));
    }
    if last.is_none() {
        return Err(DecodeError("posting without fields"));
    }
    Ok(Facts {
        doc_len,
        freq,
        fields,
    })
}

/// Reads past `tf` position gaps, checking them as decoding would.
fn skip_positions(r: &mut Reader<'_>, tf: u64) -> Result<(), DecodeError> {
    let mut p = 0u64;
    for i in 0..tf {
        let d = r.varint_max(u64::from(u32::MAX))?;
        if i > 0 && d == 0 {
            return Err(DecodeError("positions out of order"));
        }
        p += d;
        if p > u64::from(u32::MAX) {
            return Err(DecodeError("position overflow"));
        }
    }
    Ok(())
}

/// Whether, in some admitted field, the i-th posting has a position equal
/// to the first's plus i.
fn adjacent(postings: &[&Posting], fields: Fields) -> bool {
    let Some(first) = postings.first() else {
        return false;
    };
    first.fields.iter().any(|(fid, _, starts)| {
        if let Fields::One(f) = fields
            && f != *fid
        {
            return false;
        }
        starts.iter().any(|&start| {
            postings.iter().enumerate().skip(1).all(|(i, p)| {
                p.fields.iter().any(|(g, _, ps)| {
                    g == fid
                        && start
                            .checked_add(i as u32)
                            .is_some_and(|want| ps.binary_search(&want).is_ok())
                })
            })
        })
    })
}
