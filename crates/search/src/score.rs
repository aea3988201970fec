//! Scoring: BM25 as RediSearch's `BM25STD` scorer computes it
//! (`src/ext/default.c`, `src/inverted_index.h` in RediSearch 2.10), and
//! the vector distances of its FLAT indexes (VecSim's conventions).
//!
//! BM25, per matched term of a document, summed over the query's terms
//! (an intersection or a union adds its children's scores):
//!
//! ```text
//! idf   = ln(1 + (N - n + 0.5) / (n + 0.5))     N: documents in the index, n: documents with the term
//! score = idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avg_len))
//! ```
//!
//! where `f` is the term's frequency in the document with each occurrence
//! counting its field's weight (`MAX(1, (uint32_t)weight)`, a fifth of
//! that for a stem expansion), `len` the document's length counted the
//! same way, and `avg_len` the index's total length over N. RediSearch
//! fixes `b = 0.5`; issue 21 asks for `b = 0.75`, so `b` is a parameter
//! ([`Bm25::STRATA`], and [`Bm25::REDISEARCH`] for differential tests).
//! A document's own score (`FT.ADD ... SCORE`) does not exist here: 1.
//!
//! Distances (smaller is nearer; what KNN reports as the score):
//! `L2` the squared Euclidean distance, `IP` `1 - a·b`, `COSINE`
//! `1 - a·b / (|a||b|)` (1 when either vector is zero). Sums are taken in
//! FLOAT32 over eight fixed lanes (index mod 8), added in a fixed order,
//! so every run gives the same bits; the final division in f64.

use crate::schema::Metric;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25 {
    pub k1: f64,
    pub b: f64,
}

impl Bm25 {
    /// Strata's: issue 21's k1 = 1.2, b = 0.75.
    pub const STRATA: Bm25 = Bm25 { k1: 1.2, b: 0.75 };
    /// RediSearch 2.10's `BM25STD` constants.
    pub const REDISEARCH: Bm25 = Bm25 { k1: 1.2, b: 0.5 };

    /// RediSearch's `CalculateIDF_BM25`.
    pub fn idf(total_docs: u64, term_docs: u64) -> f64 {
        let n = term_docs as f64;
        let rest = total_docs.saturating_sub(term_docs) as f64;
        (1.0 + (rest + 0.5) / (n + 0.5)).ln()
    }

    /// One term's contribution (`CalculateBM25Std`). An index whose
    /// documents all have length 0 has no average: the length then counts
    /// as average.
    pub fn term(&self, idf: f64, f: f64, doc_len: u64, avg_len: f64) -> f64 {
        let ratio = if avg_len > 0.0 {
            doc_len as f64 / avg_len
        } else {
            1.0
        };
        idf * f * (self.k1 + 1.0) / (f + self.k1 * (1.0 - self.b + self.b * ratio))
    }
}

/// The distance between two vectors of equal length.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    QueryVector::new(metric, a.to_vec()).distance(b)
}

/// A KNN query's vector, prepared once for the many distances a query
/// takes: its own dot product (COSINE's norm) is computed here, not once
/// per stored vector.
#[derive(Clone, Debug)]
pub struct QueryVector {
    metric: Metric,
    values: Vec<f32>,
    self_dot: f64,
}

impl QueryVector {
    pub fn new(metric: Metric, values: Vec<f32>) -> Self {
        let self_dot = dot(&values, &values);
        QueryVector {
            metric,
            values,
            self_dot,
        }
    }

    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// The distance to `b`, of the same length.
    pub fn distance(&self, b: &[f32]) -> f64 {
        self.distance_given(b, || self_dot(b))
    }

    /// The distance to `b`, whose own dot product (`self_dot(b)`, read
    /// only for COSINE) the caller may have kept: a KNN over cached
    /// vectors then reads each vector once per query, not twice (the scan
    /// is bound by memory bandwidth).
    pub fn distance_given(&self, b: &[f32], b_self_dot: impl Fn() -> f64) -> f64 {
        debug_assert_eq!(self.values.len(), b.len());
        let a = &self.values;
        match self.metric {
            Metric::L2 => squared_l2(a, b),
            Metric::Ip => 1.0 - dot(a, b),
            Metric::Cosine => {
                let norms = (self.self_dot * b_self_dot()).sqrt();
                if norms == 0.0 {
                    1.0
                } else {
                    1.0 - dot(a, b) / norms
                }
            }
        }
    }

    /// The distance to a stored vector (FLOAT32 LE), decoded into
    /// `scratch` so a scan of many vectors allocates once. None when its
    /// size is not this vector's.
    pub fn distance_to_blob(&self, blob: &[u8], scratch: &mut Vec<f32>) -> Option<f64> {
        if blob.len() != self.values.len() * 4 {
            return None;
        }
        scratch.clear();
        scratch.extend(
            blob.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Some(self.distance(scratch))
    }
}

/// Lanes of the sums below: independent FLOAT32 accumulators, which the
/// compiler turns into SIMD additions (one chain of 384 dependent f64
/// additions was most of a KNN query's time; RediSearch's VecSim sums in
/// FLOAT32 too). Always added in the same order, so every run and every
/// replica gets the same bits.
const LANES: usize = 8;

fn lanes(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f64 {
    let mut acc = [0.0f32; LANES];
    // Fixed-size chunks: no bounds checks, so the loop vectorizes.
    let (ca, ra) = a.as_chunks::<LANES>();
    let (cb, rb) = b.as_chunks::<LANES>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..LANES {
            acc[i] += term(x[i], y[i]);
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += term(*x, *y);
    }
    let pairs = [
        acc[0] + acc[1],
        acc[2] + acc[3],
        acc[4] + acc[5],
        acc[6] + acc[7],
    ];
    f64::from((pairs[0] + pairs[1]) + (pairs[2] + pairs[3]))
}

/// The same sum in f64, in index order: for vectors whose FLOAT32 sum
/// overflows (components near 1e19 and beyond), so that a distance stays
/// finite, as it always is for stored (finite) vectors.
fn exact(a: &[f32], b: &[f32], term: impl Fn(f64, f64) -> f64) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| term(f64::from(*x), f64::from(*y)))
        .fold(0.0, |s, t| s + t)
}

/// A vector's dot product with itself, as COSINE takes it.
pub fn self_dot(v: &[f32]) -> f64 {
    dot(v, v)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    let fast = lanes(a, b, |x, y| x * y);
    if fast.is_finite() {
        fast
    } else {
        exact(a, b, |x, y| x * y)
    }
}

fn squared_l2(a: &[f32], b: &[f32]) -> f64 {
    let fast = lanes(a, b, |x, y| (x - y) * (x - y));
    if fast.is_finite() {
        fast
    } else {
        exact(a, b, |x, y| (x - y) * (x - y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_matches_redisearch_formula() {
        // ln(1 + (10 - 2 + 0.5) / 2.5) = ln(4.4)
        assert!((Bm25::idf(10, 2) - 4.4f64.ln()).abs() < 1e-12);
        assert!(
            Bm25::idf(10, 10) > 0.0,
            "a term in every document still scores"
        );
    }

    #[test]
    fn bm25_term_saturates_and_normalizes_length() {
        let s = Bm25::STRATA;
        let idf = Bm25::idf(100, 10);
        assert!(s.term(idf, 2.0, 10, 10.0) > s.term(idf, 1.0, 10, 10.0));
        assert!(s.term(idf, 1.0, 5, 10.0) > s.term(idf, 1.0, 20, 10.0));
        // f = 1 at average length: idf * (k1 + 1) / (1 + k1).
        assert!((s.term(idf, 1.0, 10, 10.0) - idf).abs() < 1e-12);
    }

    #[test]
    fn huge_components_keep_distances_finite() {
        let big = [3.0e38f32; 16];
        let small = [1.0f32; 16];
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let d = distance(metric, &big, &small);
            assert!(d.is_finite(), "{metric:?}: {d}");
        }
        assert!((distance(Metric::Cosine, &big, &small)).abs() < 1e-9);
    }

    #[test]
    fn distances_follow_vecsim_conventions() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 2.0]);
        assert_eq!(distance(Metric::L2, &a, &b), 5.0);
        assert_eq!(distance(Metric::Ip, &a, &b), 1.0);
        assert_eq!(distance(Metric::Cosine, &a, &b), 1.0);
        assert_eq!(distance(Metric::Cosine, &a, &[3.0, 0.0]), 0.0);
        assert_eq!(distance(Metric::Cosine, &a, &[0.0, 0.0]), 1.0);
    }
}
