//! Exact KNN: the k nearest stored vectors of a field, by (distance, key).
//!
//! Two ways to the same answer: a field whose vectors fit the reader's
//! cache is gathered once into a [`VectorList`] (keys in order, floats
//! back to back) and then read at memory speed by every query until a
//! write changes it; a larger field is streamed from the view, one entry
//! at a time, as before.

use std::collections::BinaryHeap;
use std::sync::Arc;

use super::matches::{KeyArena, Keys, Matches};
use super::{Eval, EvalError, Hit, IndexRead};
use crate::codec::DecodeError;
use crate::document::floats_from_blob;
use crate::keys::{self, KIND_VECTOR};
use crate::query::Knn;
use crate::schema::FieldKind;
use crate::score::{QueryVector, self_dot};

/// Bytes counted per vector on top of its floats: its user key and offset
/// (an estimate, to decide before reading whether a field fits).
const KEY_BYTES_ESTIMATE: u64 = 32;

/// A vector field's stored vectors, decoded: user keys ascending, and
/// `dim` floats per key, back to back.
#[derive(Clone, Debug, Default)]
pub struct VectorList {
    keys: KeyArena,
    values: Vec<f32>,
    /// Per vector: its dot product with itself (COSINE's norm), so a
    /// query reads each vector once.
    self_dots: Vec<f64>,
    dim: usize,
}

impl VectorList {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Bytes held, for a cache's bound.
    pub fn size_bytes(&self) -> usize {
        self.keys.size_bytes() + self.values.capacity() * 4 + self.self_dots.capacity() * 8
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// The k best so far, as a max-heap: its top is the worst kept.
struct Best {
    k: usize,
    heap: BinaryHeap<Nearest>,
}

impl Best {
    fn new(k: usize) -> Best {
        Best {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// Offers a candidate; only one that beats the worst kept costs a key
    /// copy.
    fn offer(&mut self, distance: f64, key: &[u8]) {
        if self.heap.len() == self.k
            && self.heap.peek().is_some_and(|worst| {
                distance
                    .total_cmp(&worst.distance)
                    .then_with(|| key.cmp(&worst.key))
                    .is_ge()
            })
        {
            return;
        }
        self.heap.push(Nearest {
            distance,
            key: key.to_vec(),
        });
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    fn into_hits(self) -> Vec<Hit> {
        self.heap
            .into_iter()
            .map(|n| Hit {
                key: n.key,
                score: n.distance,
            })
            .collect()
    }
}

impl<R: IndexRead> Eval<'_, R> {
    /// The k nearest of the vectors (of `filter`'s documents, if any).
    pub(super) fn knn(
        &mut self,
        knn: &Knn,
        filter: Option<&Matches>,
    ) -> Result<Vec<Hit>, EvalError> {
        let Some(fid) = self.field_of(&knn.field, |k| matches!(k, FieldKind::Vector(_))) else {
            return Ok(Vec::new());
        };
        let FieldKind::Vector(vd) = &self.ix.def.fields[usize::from(fid)].kind else {
            return Ok(Vec::new());
        };
        let (dim, metric) = (vd.dim, vd.metric);
        let target = floats_from_blob(dim, &knn.vector).ok_or(EvalError::VectorSize {
            got: knn.vector.len(),
            expected: dim as usize * 4,
        })?;
        if !target.iter().all(|x| x.is_finite()) {
            return Err(EvalError::VectorNotFinite);
        }
        let target = QueryVector::new(metric, target);
        let prefix = keys::kind_prefix(self.ix.id, KIND_VECTOR, Some(fid));
        let mut best = Best::new(knn.k);
        // At most one vector per document.
        let estimate = self
            .stats
            .docs
            .saturating_mul(u64::from(dim) * 4 + KEY_BYTES_ESTIMATE);
        if estimate <= self.read.vectors_kept_size_bytes_max() {
            let list = self.vector_list(&prefix, dim as usize)?;
            for i in 0..list.len() {
                let key = list.keys.get(i);
                if filter.is_none_or(|f| f.contains(key, &self.keys)) {
                    let distance = target.distance_given(list.vector(i), || list.self_dots[i]);
                    best.offer(distance, key);
                }
            }
            return Ok(best.into_hits());
        }
        // The filter's keys, out of `self` while the scan borrows it.
        let keys_seen = std::mem::take(&mut self.keys);
        let scanned = self.stream_vectors(&prefix, &target, filter, &keys_seen, &mut best);
        self.keys = keys_seen;
        scanned?;
        Ok(best.into_hits())
    }

    /// The field's vectors from the reader's cache, or read from the view
    /// (and offered to the cache). Counted against the query's entry limit
    /// either way.
    fn vector_list(&mut self, prefix: &[u8], dim: usize) -> Result<Arc<VectorList>, EvalError> {
        if let Some(list) = self.read.cached_vectors(prefix) {
            self.count(list.len() as u64)?;
            return Ok(list);
        }
        let mut list = VectorList {
            dim,
            ..VectorList::default()
        };
        self.scan_prefix(prefix, |k, v| {
            let key = keys::user_key_after(k, prefix)?;
            if v.len() != dim * 4 {
                return Err(DecodeError("vector entry of the wrong size").into());
            }
            list.keys.push(key);
            let start = list.values.len();
            list.values.extend(
                v.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            list.self_dots.push(self_dot(&list.values[start..]));
            Ok(true)
        })?;
        list.keys.shrink_to_fit();
        list.values.shrink_to_fit();
        list.self_dots.shrink_to_fit();
        let list = Arc::new(list);
        self.read.keep_vectors(prefix, &list);
        Ok(list)
    }

    /// Every stored vector of the field, one entry at a time.
    fn stream_vectors(
        &mut self,
        prefix: &[u8],
        target: &QueryVector,
        filter: Option<&Matches>,
        keys_seen: &Keys,
        best: &mut Best,
    ) -> Result<(), EvalError> {
        let mut scratch = Vec::with_capacity(target.dim());
        self.scan_prefix(prefix, |k, v| {
            let key = keys::user_key_after(k, prefix)?;
            if filter.is_some_and(|f| !f.contains(key, keys_seen)) {
                return Ok(true);
            }
            let distance = target
                .distance_to_blob(v, &mut scratch)
                .ok_or(DecodeError("vector entry of the wrong size"))?;
            best.offer(distance, key);
            Ok(true)
        })
    }
}

/// A KNN candidate, ordered by (distance, key): the heap keeps the
/// smallest k and drops the largest.
struct Nearest {
    distance: f64,
    key: Vec<u8>,
}

impl PartialEq for Nearest {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Nearest {}
impl PartialOrd for Nearest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Nearest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.key.cmp(&other.key))
    }
}
