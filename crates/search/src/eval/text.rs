//! Full-text nodes: words (with their stem expansions), prefixes and
//! phrases, scored with BM25.

use std::collections::BTreeMap;

use super::{Eval, EvalError, IndexRead, Set};
use crate::entries::Posting;
use crate::keys::{self, KIND_TERM};
use crate::limits::{PREFIX_CHARS_MIN, PREFIX_EXPANSIONS_MAX};
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
    fn admits(self, posting: &Posting) -> bool {
        match self {
            Fields::Any => true,
            Fields::One(f) => posting.fields.iter().any(|(g, _, _)| *g == f),
            Fields::None => false,
        }
    }
}

/// One term's postings that pass the field filter: user key to posting.
type Postings = BTreeMap<Vec<u8>, Posting>;

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

    /// Every posting of one exact term (raw or stem). All of them are read
    /// whatever the field filter: the term's document frequency (its idf)
    /// counts every document that holds it, as in RediSearch.
    fn postings(
        &mut self,
        term: &str,
        stem: bool,
        fields: Fields,
    ) -> Result<(u64, Postings), EvalError> {
        let prefix = keys::posting_key(self.ix.id, stem, term, None);
        let mut out = Postings::new();
        let mut df = 0u64;
        self.scan_prefix(&prefix.clone(), |k, v| {
            let key = keys::user_key_after(k, &prefix)?;
            let posting = Posting::decode(v, !stem)?;
            df += 1;
            if fields.admits(&posting) {
                out.insert(key.to_vec(), posting);
            }
            Ok(true)
        })?;
        Ok((df, out))
    }

    /// BM25 of one term's postings: `f` counts every field of the
    /// document, each occurrence with its field's weight.
    fn score_postings(&self, df: u64, postings: &Postings, stem: bool) -> Set {
        let idf = Bm25::idf(self.stats.docs, df);
        postings
            .iter()
            .map(|(key, p)| {
                let f: u64 = p
                    .fields
                    .iter()
                    .map(|(fid, tf, _)| u64::from(*tf) * self.ix.text_weight(*fid, stem))
                    .sum();
                (
                    key.clone(),
                    self.opts.bm25.term(idf, f as f64, p.doc_len, self.avg_len),
                )
            })
            .collect()
    }

    /// A query word: each of its analyzed terms (usually one), ANDed; each
    /// term expanded to itself, `stem` (when it differs) and `+stem`
    /// (always: [`crate::analyze::Analyzer::query_stem`]), ORed.
    pub(super) fn term(
        &mut self,
        field: Option<&str>,
        word: &str,
    ) -> Result<Option<Set>, EvalError> {
        let fields = self.fields(field);
        let terms = self.ix.analyzer.query_terms(word);
        let mut acc: Option<Set> = None;
        for term in terms {
            let mut union = Set::new();
            let mut expansions = vec![(term.clone(), false)];
            if let Some(s) = self.ix.analyzer.query_stem(&term) {
                if s != term {
                    expansions.push((s.clone(), false));
                }
                expansions.push((s, true));
            }
            for (t, is_stem) in expansions {
                let (df, postings) = self.postings(&t, is_stem, fields)?;
                for (k, v) in self.score_postings(df, &postings, is_stem) {
                    *union.entry(k).or_insert(0.0) += v;
                }
            }
            acc = Some(match acc {
                None => union,
                Some(a) => a
                    .into_iter()
                    .filter_map(|(k, v)| union.get(&k).map(|w| (k, v + w)))
                    .collect(),
            });
        }
        Ok(acc)
    }

    /// `pre*`: the raw terms starting with `pre` (lower case, at least
    /// [`PREFIX_CHARS_MIN`] characters, at most [`PREFIX_EXPANSIONS_MAX`]
    /// terms, in term order), each scored as a term.
    pub(super) fn prefix(&mut self, field: Option<&str>, prefix: &str) -> Result<Set, EvalError> {
        let prefix = prefix.to_lowercase();
        if prefix.chars().count() < PREFIX_CHARS_MIN || prefix.contains('\0') {
            return Ok(Set::new());
        }
        let fields = self.fields(field);
        let scan = keys::term_prefix_scan(self.ix.id, &prefix);
        let id = self.ix.id;
        let mut by_term: Vec<(String, u64, Postings)> = Vec::new();
        self.scan_prefix(&scan, |k, v| {
            let (term, user_key) = keys::split_posting(k, id, false)?;
            if by_term.last().is_none_or(|(t, _, _)| *t != term) {
                if by_term.len() == PREFIX_EXPANSIONS_MAX {
                    return Ok(false);
                }
                by_term.push((term, 0, Postings::new()));
            }
            let posting = Posting::decode(v, true)?;
            if let Some((_, df, postings)) = by_term.last_mut() {
                *df += 1;
                if fields.admits(&posting) {
                    postings.insert(user_key.to_vec(), posting);
                }
            }
            Ok(true)
        })?;
        debug_assert!(scan.starts_with(&keys::kind_prefix(id, KIND_TERM, None)));
        // As RediSearch: a document is scored by the first term (in term
        // order) it holds, not the sum (its prefix union stops at the
        // first child that has the document).
        let mut out = Set::new();
        for (_, df, postings) in &by_term {
            for (k, v) in self.score_postings(*df, postings, false) {
                out.entry(k).or_insert(v);
            }
        }
        Ok(out)
    }

    /// `"a b c"`: raw terms (no stems) at consecutive positions of one
    /// field; scored as the sum of the terms' BM25.
    pub(super) fn phrase(
        &mut self,
        field: Option<&str>,
        text: &str,
    ) -> Result<Option<Set>, EvalError> {
        let fields = self.fields(field);
        let terms = self.ix.analyzer.query_terms(text);
        if terms.is_empty() {
            return Ok(None);
        }
        let mut lists = Vec::with_capacity(terms.len());
        for t in &terms {
            lists.push(self.postings(t, false, fields)?);
        }
        let mut out = Set::new();
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
                let one = Postings::from([(key.clone(), (*p).clone())]);
                score += self.score_postings(df, &one, false).values().sum::<f64>();
            }
            out.insert(key.clone(), score);
        }
        Ok(Some(out))
    }
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
