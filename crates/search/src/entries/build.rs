//! One document's entries, built flat: what [`Indexer::changes`] compares
//! for every indexed write, so it is built with few allocations. The
//! words of the document go into one buffer, sorted once; postings are
//! encoded straight from that order; keys and values go into another
//! buffer. (A map keyed by owned strings per term and per entry was half
//! the cost of an indexed write: malloc, free and key compares.)

use super::{Indexer, StatsDelta};
use crate::analyze::Stems;
use crate::codec::{TERMINATOR, ordered_f64, put_escaped, put_varint};
use crate::document::{Document, FieldValue};
use crate::keys::{
    KIND_DOC, KIND_NUMERIC, KIND_STEM, KIND_TAG, KIND_TERM, KIND_VECTOR, TAG_SEARCH,
};
use crate::limits::TOKENS_PER_FIELD_MAX;
use crate::schema::{FieldId, FieldKind, IndexId};

/// One document's entries, ascending by key, each key without what every
/// entry of the document shares: the index's head (`s id`) before and the
/// user key after. What lies between is prefix-free (a kind byte, then
/// fixed-size fields or a terminated escaped string), so the order of
/// these parts is the order of the full keys, and equal parts are equal
/// keys: two versions of a document compare without building a key.
#[derive(Default)]
pub(super) struct DocEntries {
    bytes: Vec<u8>,
    /// Per entry: (start of its key part, end of it = start of its
    /// value, end of its value), into `bytes`.
    spans: Vec<(usize, usize, usize)>,
}

impl DocEntries {
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The key part of entry `i` (see the type).
    pub(super) fn key(&self, i: usize) -> &[u8] {
        let (start, end, _) = self.spans[i];
        &self.bytes[start..end]
    }

    pub(super) fn value(&self, i: usize) -> &[u8] {
        let (_, start, end) = self.spans[i];
        &self.bytes[start..end]
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    /// Bytes the buffers hold (their capacity).
    pub(super) fn size_bytes(&self) -> usize {
        self.bytes.capacity() + self.spans.capacity() * size_of::<(usize, usize, usize)>()
    }

    /// Starts an entry: its key part follows.
    fn begin(&mut self, kind: u8) -> usize {
        let start = self.bytes.len();
        self.bytes.push(kind);
        start
    }

    /// Ends the entry begun at `start`, whose key part ends at `key_end`.
    fn end(&mut self, start: usize, key_end: usize) {
        self.spans.push((start, key_end, self.bytes.len()));
    }

    fn is_sorted(&self) -> bool {
        (1..self.len()).all(|i| self.key(i - 1) < self.key(i))
    }

    /// Sorts, keeping the last of equal keys (as a map would). Never
    /// needed by construction (see [`Indexer::build`]); kept so that a
    /// mistake there costs time, not a wrong diff.
    fn sort(&mut self) {
        let mut spans = std::mem::take(&mut self.spans);
        spans.sort_by(|a, b| self.bytes[a.0..a.1].cmp(&self.bytes[b.0..b.1]));
        for (i, s) in spans.iter().enumerate() {
            let next = spans.get(i + 1);
            if next.is_none_or(|n| self.bytes[n.0..n.1] != self.bytes[s.0..s.1]) {
                self.spans.push(*s);
            }
        }
    }
}

/// The full key of an entry of index `id`: head, key part, user key.
pub(super) fn full_key(id: IndexId, part: &[u8], user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + part.len() + user_key.len());
    k.push(TAG_SEARCH);
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(part);
    k.extend_from_slice(user_key);
    k
}

/// One kept word of a TEXT field: its term in [`Scratch::terms`].
#[derive(Clone, Copy)]
struct Occurrence {
    /// The term's first 8 bytes, big-endian, zero-padded: terms hold no
    /// NUL, so this orders them as their bytes do, and settles most
    /// comparisons of a sort without reading the term.
    head: u64,
    start: usize,
    end: usize,
    field: FieldId,
    position: u32,
}

impl Occurrence {
    fn new(terms: &str, start: usize, field: FieldId, position: u32) -> Self {
        let term = &terms.as_bytes()[start..];
        debug_assert!(!term.contains(&0), "terms hold no NUL");
        let mut head = [0u8; 8];
        let n = term.len().min(8);
        head[..n].copy_from_slice(&term[..n]);
        Occurrence {
            head: u64::from_be_bytes(head),
            start,
            end: terms.len(),
            field,
            position,
        }
    }

    /// The order of the terms' bytes. Equal heads of terms of at most 8
    /// bytes are equal terms (no NUL: the padding cannot be a byte).
    fn term_order(&self, other: &Occurrence, terms: &str) -> std::cmp::Ordering {
        self.head.cmp(&other.head).then_with(|| {
            if self.end - self.start <= 8 && other.end - other.start <= 8 {
                std::cmp::Ordering::Equal
            } else {
                terms[self.start..self.end].cmp(&terms[other.start..other.end])
            }
        })
    }
}

/// A stem's frequency in one field: the stem in [`Scratch::stem_text`].
#[derive(Clone, Copy)]
struct StemCount {
    start: usize,
    end: usize,
    field: FieldId,
    tf: u32,
}

/// Buffers for building a document's entries, reused from one document
/// to the next.
#[derive(Default)]
pub(super) struct Scratch {
    lower: String,
    terms: String,
    occurrences: Vec<Occurrence>,
    /// (head, index into `occurrences`), sorted.
    order: Vec<(u64, u32)>,
    stem_text: String,
    stems: Vec<StemCount>,
}

impl Scratch {
    /// Bytes the buffers hold (their capacity).
    pub(super) fn size_bytes(&self) -> usize {
        self.lower.capacity()
            + self.terms.capacity()
            + self.occurrences.capacity() * size_of::<Occurrence>()
            + self.order.capacity() * size_of::<(u64, u32)>()
            + self.stem_text.capacity()
            + self.stems.capacity() * size_of::<StemCount>()
    }

    fn clear(&mut self) {
        self.terms.clear();
        self.occurrences.clear();
        self.order.clear();
        self.stem_text.clear();
        self.stems.clear();
    }
}

impl Indexer {
    /// The entries of `doc` into `out`, ascending by key part, and each
    /// TEXT field's token count into `stats`. The order by construction:
    /// kinds ascending (doc record, terms, stems, tags, numbers,
    /// vectors); terms and stems sorted as strings, which is the order of
    /// their escaped form (they hold no NUL, and escaping preserves order
    /// anyway); tags by field, then as the document sorted them.
    pub(super) fn build(
        &self,
        doc: &Document,
        scratch: &mut Scratch,
        out: &mut DocEntries,
        stats: &mut StatsDelta,
    ) {
        out.clear();
        scratch.clear();
        self.collect_terms(doc, scratch, &mut stats.tokens);
        let doc_len: u64 = stats
            .tokens
            .iter()
            .enumerate()
            .map(|(f, &n)| n as u64 * self.text_weight(f as FieldId, false))
            .sum();
        let start = out.begin(KIND_DOC);
        let key_end = out.bytes.len();
        put_varint(&mut out.bytes, self.def.fields.len() as u64);
        for &t in &stats.tokens {
            put_varint(&mut out.bytes, t as u64);
        }
        out.end(start, key_end);
        self.term_postings(scratch, doc_len, out);
        stem_postings(scratch, doc_len, out);
        self.field_entries(doc, out);
        if !out.is_sorted() {
            debug_assert!(false, "document entries built out of order");
            out.sort();
        }
    }

    /// Every kept word of every TEXT field, in order, with its position:
    /// the texts of one field (a JSON array gives several) go on from one
    /// to the next with a gap of one, so a phrase never spans two texts.
    /// At most [`TOKENS_PER_FIELD_MAX`] per field.
    fn collect_terms(&self, doc: &Document, scratch: &mut Scratch, counts: &mut [i64]) {
        let Scratch {
            lower,
            terms,
            occurrences,
            ..
        } = scratch;
        for (i, (field, value)) in self.def.fields.iter().zip(&doc.fields).enumerate() {
            let (FieldKind::Text { .. }, Some(FieldValue::Text(parts))) = (&field.kind, value)
            else {
                continue;
            };
            let mut count = 0usize;
            let mut last: Option<u32> = None;
            for part in parts {
                let base = last.map_or(0, |p| p + 2);
                let mut in_part = 0u32;
                self.analyzer.each_term(part, lower, |term| {
                    if count == TOKENS_PER_FIELD_MAX {
                        return false;
                    }
                    let position = base + in_part;
                    let start = terms.len();
                    terms.push_str(term);
                    occurrences.push(Occurrence::new(terms, start, i as FieldId, position));
                    in_part += 1;
                    count += 1;
                    last = Some(position);
                    true
                });
            }
            counts[i] = count as i64;
        }
    }

    /// A term posting per distinct term, ascending: the weighted length,
    /// then per field holding it, ascending: field id, tf, the positions
    /// (the first, then gaps). Notes each stemmed field's stem count.
    fn term_postings(&self, scratch: &mut Scratch, doc_len: u64, out: &mut DocEntries) {
        sort_occurrences(scratch);
        let Scratch {
            terms,
            occurrences,
            order,
            stem_text,
            stems,
            ..
        } = scratch;
        let at = |p: &(u64, u32)| &occurrences[p.1 as usize];
        let mut stemmer: Option<Stems> = None;
        for same_term in order.chunk_by(|a, b| at(a).term_order(at(b), terms).is_eq()) {
            let word = &terms[at(&same_term[0]).start..at(&same_term[0]).end];
            let start = out.begin(KIND_TERM);
            out.bytes.extend_from_slice(word.as_bytes());
            out.bytes.extend_from_slice(&TERMINATOR);
            let key_end = out.bytes.len();
            put_varint(&mut out.bytes, doc_len);
            // The stem span in `stem_text`, looked up at the first
            // stemmed field holding the word.
            let mut stem: Option<Option<(usize, usize)>> = None;
            for run in same_term.chunk_by(|a, b| at(a).field == at(b).field) {
                let field = at(&run[0]).field;
                put_varint(&mut out.bytes, u64::from(field));
                put_varint(&mut out.bytes, run.len() as u64);
                let mut prev = 0;
                for (n, p) in run.iter().enumerate() {
                    let position = at(p).position;
                    let gap = if n == 0 { position } else { position - prev };
                    put_varint(&mut out.bytes, u64::from(gap));
                    prev = position;
                }
                if !self.stems_field(field) {
                    continue;
                }
                let span = *stem.get_or_insert_with(|| {
                    let cache = stemmer.get_or_insert_with(|| self.analyzer.stems());
                    let from = stem_text.len();
                    let found = cache.stem_into(word, stem_text);
                    found.then_some((from, stem_text.len()))
                });
                if let Some((start, end)) = span {
                    stems.push(StemCount {
                        start,
                        end,
                        field,
                        tf: run.len() as u32,
                    });
                }
            }
            out.end(start, key_end);
        }
    }

    /// Whether `field` is a TEXT field with stemming.
    fn stems_field(&self, field: FieldId) -> bool {
        matches!(
            self.def.fields.get(usize::from(field)).map(|f| &f.kind),
            Some(FieldKind::Text { nostem: false, .. })
        )
    }

    /// Tag, numeric and vector entries, in key order: kind, then field.
    fn field_entries(&self, doc: &Document, out: &mut DocEntries) {
        for kind in [KIND_TAG, KIND_NUMERIC, KIND_VECTOR] {
            for (i, value) in doc.fields.iter().enumerate() {
                let fid = (i as FieldId).to_be_bytes();
                match (kind, value) {
                    (KIND_TAG, Some(FieldValue::Tags(tags))) => {
                        for t in tags {
                            let start = out.begin(kind);
                            out.bytes.extend_from_slice(&fid);
                            put_escaped(&mut out.bytes, t.as_bytes(), true);
                            out.end(start, out.bytes.len());
                        }
                    }
                    (KIND_NUMERIC, Some(FieldValue::Numeric(n))) => {
                        let start = out.begin(kind);
                        out.bytes.extend_from_slice(&fid);
                        out.bytes.extend_from_slice(&ordered_f64(*n));
                        out.end(start, out.bytes.len());
                    }
                    (KIND_VECTOR, Some(FieldValue::Vector(v))) => {
                        let start = out.begin(kind);
                        out.bytes.extend_from_slice(&fid);
                        let key_end = out.bytes.len();
                        out.bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                        out.end(start, key_end);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Fills [`Scratch::order`] with the occurrences sorted by (term, field,
/// position): by (head, index), since words were pushed in (field,
/// position) order, then runs of one head that hold a term longer than
/// the head by the whole term. Sorting pairs of integers costs half as
/// much as sorting the occurrences by their terms.
fn sort_occurrences(scratch: &mut Scratch) {
    let Scratch {
        terms,
        occurrences,
        order,
        ..
    } = scratch;
    let term = |i: u32| {
        let o = &occurrences[i as usize];
        &terms[o.start..o.end]
    };
    order.clear();
    order.extend(
        occurrences
            .iter()
            .enumerate()
            .map(|(i, o)| (o.head, i as u32)),
    );
    order.sort_unstable();
    for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 && run.iter().any(|&(_, i)| term(i).len() > 8) {
            run.sort_unstable_by(|a, b| term(a.1).cmp(term(b.1)).then(a.1.cmp(&b.1)));
        }
    }
}

/// A stem posting per distinct stem, ascending: the weighted length,
/// then per field, ascending: field id, tf (summed over the words with
/// that stem).
fn stem_postings(scratch: &mut Scratch, doc_len: u64, out: &mut DocEntries) {
    let Scratch {
        stem_text, stems, ..
    } = scratch;
    let stem = |s: &StemCount| &stem_text[s.start..s.end];
    stems.sort_unstable_by(|a, b| (stem(a), a.field).cmp(&(stem(b), b.field)));
    for same_stem in stems.chunk_by(|a, b| stem(a) == stem(b)) {
        let start = out.begin(KIND_STEM);
        out.bytes.extend_from_slice(stem(&same_stem[0]).as_bytes());
        out.bytes.extend_from_slice(&TERMINATOR);
        let key_end = out.bytes.len();
        put_varint(&mut out.bytes, doc_len);
        for run in same_stem.chunk_by(|a, b| a.field == b.field) {
            let tf: u64 = run.iter().map(|s| u64::from(s.tf)).sum();
            put_varint(&mut out.bytes, u64::from(run[0].field));
            put_varint(&mut out.bytes, tf);
        }
        out.end(start, key_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(items: &[(&[u8], &[u8])]) -> DocEntries {
        let mut e = DocEntries::default();
        for (k, v) in items {
            let start = e.bytes.len();
            e.bytes.extend_from_slice(k);
            let key_end = e.bytes.len();
            e.bytes.extend_from_slice(v);
            e.end(start, key_end);
        }
        e
    }

    #[test]
    fn the_fallback_sort_orders_and_keeps_the_last_of_equal_keys() {
        let mut e = entries(&[
            (b"\x03b", b"1"),
            (b"\x02", b"2"),
            (b"\x03b", b"3"),
            (b"\x03a", b""),
        ]);
        assert!(!e.is_sorted());
        e.sort();
        assert!(e.is_sorted());
        let got: Vec<_> = (0..e.len()).map(|i| (e.key(i), e.value(i))).collect();
        let want: Vec<(&[u8], &[u8])> = vec![(b"\x02", b"2"), (b"\x03a", b""), (b"\x03b", b"3")];
        assert_eq!(got, want);
    }

    #[test]
    fn full_keys_are_the_keys_module_layout() {
        let part = [&[KIND_TERM][..], b"hi", &TERMINATOR].concat();
        assert_eq!(
            full_key(7, &part, b"k"),
            crate::keys::posting_key(7, false, "hi", Some(b"k"))
        );
        assert_eq!(
            full_key(7, &[KIND_DOC], b"k"),
            crate::keys::doc_key(7, b"k")
        );
    }
}
