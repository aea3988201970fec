//! Search reads: every answer from ONE snapshot (definition, statistics,
//! entries and the records they point at), so a query never mixes two
//! states. Readers decode the catalog from their snapshot; the writer's
//! decoded copy is its own.

use bytes::Bytes;
use strata_search::eval::{self, EvalError};
use strata_search::{
    IndexDef, IndexId, IndexRead, IndexStats, Indexer, Query, ReadError, SearchOptions, keys,
};

use std::sync::Arc;

use strata_search::eval::{PostingList, VectorList};

use super::cache::PostingCache;
use super::catalog::{AtSnapshot, Build, Catalog, Source};
use crate::engine::data_key;
use crate::engine::decode;
use crate::error::Result;
use crate::record::Record;
use crate::snapshot::Snapshot;

/// Hits a search may have to skip because their record expired but is
/// not yet swept, before it reports fewer hits than asked: each retry
/// asks the index for twice as many.
const EXPIRED_RETRIES_MAX: usize = 4;

/// One index, as FT._LIST and the background drivers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexSummary {
    pub name: String,
    pub id: IndexId,
    pub building: bool,
}

/// Work the background driver proposes, one page at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchWork {
    Backfill { id: IndexId },
    Purge { id: IndexId },
}

/// FT.INFO's facts, exact as of one snapshot.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    pub id: IndexId,
    pub def: IndexDef,
    pub stats: IndexStats,
    pub building: bool,
    /// Keys the backfill examined so far (0 once built).
    pub keys_scanned: u64,
    /// 1.0 once built; while building, keys examined over keys stored
    /// (an estimate: keys the index does not cover count too).
    pub percent_indexed: f64,
}

#[derive(Clone, Debug)]
pub struct SearchHit {
    pub key: Bytes,
    pub score: f64,
    pub record: Record,
}

#[derive(Clone, Debug)]
pub struct SearchAnswer {
    /// Documents matched (minus those found expired).
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// The index is still being built: results cover only the keys the
    /// backfill has passed.
    pub building: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// RediSearch's text for FT.SEARCH on a missing index.
    #[error("{0}: no such index")]
    UnknownIndex(String),
    #[error(transparent)]
    Eval(#[from] EvalError),
}

impl IndexRead for AtSnapshot<'_> {
    fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, ReadError> {
        Source::get(self, key).map_err(|e| ReadError(e.to_string()))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> std::result::Result<(), ReadError> {
        Source::scan(self, start, end, &mut |k, v| Ok(visit(k, v)))
            .map_err(|e| ReadError(e.to_string()))
    }
}

/// A snapshot's reads with the posting cache in front (`cache.rs`):
/// `read_at` is the cache version loaded before the snapshot was taken.
struct CachedRead<'a> {
    src: AtSnapshot<'a>,
    cache: &'a PostingCache,
    read_at: u64,
}

impl IndexRead for CachedRead<'_> {
    fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, ReadError> {
        IndexRead::get(&self.src, key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> std::result::Result<(), ReadError> {
        IndexRead::scan(&self.src, start, end, visit)
    }

    fn cached_postings(&self, list: &[u8]) -> Option<Arc<PostingList>> {
        self.cache.get(list, self.read_at)
    }

    fn keep_postings(&self, list: &[u8], postings: &Arc<PostingList>) {
        self.cache.fill(list, self.read_at, postings);
    }

    fn cached_vectors(&self, list: &[u8]) -> Option<Arc<VectorList>> {
        self.cache.get_vectors(list, self.read_at)
    }

    fn keep_vectors(&self, list: &[u8], vectors: &Arc<VectorList>) {
        self.cache.fill_vectors(list, self.read_at, vectors);
    }

    fn vectors_kept_size_bytes_max(&self) -> u64 {
        self.cache.vectors_size_bytes_max()
    }
}

impl Snapshot {
    fn source(&self) -> AtSnapshot<'_> {
        AtSnapshot {
            snap: &self.snap,
            data: &self.engine.data,
        }
    }

    fn catalog(&self) -> Result<Catalog> {
        Catalog::load(&self.source())
    }

    /// The definition and build state of `name`, decoded from this view.
    fn index(&self, name: &str) -> Result<Option<(IndexId, IndexDef, Build)>> {
        let src = self.source();
        let Some(raw) = Source::get(&src, &keys::definition_key(name))? else {
            return Ok(None);
        };
        let (id, def) = IndexDef::decode(&raw).map_err(|_| {
            crate::engine::corrupt(&keys::definition_key(name), "search index definition")
        })?;
        let build = match Source::get(&src, &keys::build_key(id))? {
            Some(raw) => Build::decode(&raw)
                .map_err(|_| crate::engine::corrupt(&keys::build_key(id), "search build state"))?,
            None => Build::Done,
        };
        Ok(Some((id, def, build)))
    }

    /// FT.SEARCH: hits with their live records, from this one view.
    pub fn search(
        &self,
        name: &str,
        query: &Query,
        opts: &SearchOptions,
        now_ms: u64,
    ) -> Result<std::result::Result<SearchAnswer, SearchError>> {
        self.search_cached(name, query, opts, now_ms, None)
    }

    /// [`Snapshot::search`] with the posting cache, whose version the
    /// caller loaded BEFORE it took this snapshot (`cache.rs`).
    pub(crate) fn search_cached(
        &self,
        name: &str,
        query: &Query,
        opts: &SearchOptions,
        now_ms: u64,
        cache: Option<(&PostingCache, u64)>,
    ) -> Result<std::result::Result<SearchAnswer, SearchError>> {
        let Some((id, def, build)) = self.index(name)? else {
            return Ok(Err(SearchError::UnknownIndex(name.to_string())));
        };
        let indexer = Indexer::new(id, def);
        match cache {
            Some((cache, read_at)) => {
                let read = CachedRead {
                    src: self.source(),
                    cache,
                    read_at,
                };
                self.search_with(&indexer, &read, build, query, opts, now_ms)
            }
            None => self.search_with(&indexer, &self.source(), build, query, opts, now_ms),
        }
    }

    fn search_with(
        &self,
        indexer: &Indexer,
        src: &impl IndexRead,
        build: Build,
        query: &Query,
        opts: &SearchOptions,
        now_ms: u64,
    ) -> Result<std::result::Result<SearchAnswer, SearchError>> {
        let wanted = opts.offset.saturating_add(opts.count);
        let mut ask = *opts;
        ask.offset = 0;
        ask.count = wanted;
        let mut attempt = 0;
        loop {
            let result = match eval::search(indexer, src, query, &ask) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e.into())),
            };
            let asked = result.hits.len();
            let mut live = Vec::with_capacity(asked);
            let mut expired = 0u64;
            for hit in result.hits {
                match self.engine.snapshot_get(&self.snap, &hit.key)? {
                    Some(r) if r.is_live_at(now_ms) => live.push(SearchHit {
                        key: Bytes::from(hit.key),
                        score: hit.score,
                        record: r,
                    }),
                    // Expired but not swept, or (never, short of damage)
                    // an entry without its record: not a hit.
                    _ => expired += 1,
                }
            }
            let exhausted = (asked as u64) >= result.total || asked < ask.count;
            if live.len() >= wanted || exhausted || attempt == EXPIRED_RETRIES_MAX {
                let total = result.total.saturating_sub(expired);
                let hits = live
                    .into_iter()
                    .skip(opts.offset)
                    .take(opts.count)
                    .collect();
                return Ok(Ok(SearchAnswer {
                    total,
                    hits,
                    building: build != Build::Done,
                }));
            }
            ask.count = ask.count.saturating_mul(2).max(1);
            attempt += 1;
        }
    }

    /// The vector stored for `key` in the vector field `field` of index
    /// `name` (an `EMBED` field's computed vector included).
    pub fn stored_vector(&self, name: &str, key: &[u8], field: &str) -> Result<Option<Vec<f32>>> {
        let Some((id, def, _)) = self.index(name)? else {
            return Ok(None);
        };
        let Some(fid) = def.field_id(field) else {
            return Ok(None);
        };
        let dim = match &def.fields[usize::from(fid)].kind {
            strata_search::schema::FieldKind::Vector(v) => v.dim,
            _ => return Ok(None),
        };
        let raw = Source::get(&self.source(), &keys::vector_key(id, fid, key))?;
        Ok(raw.and_then(|r| strata_search::document::floats_from_blob(dim, &r)))
    }

    /// FT.INFO.
    pub fn index_info(&self, name: &str, keys_stored: u64) -> Result<Option<IndexInfo>> {
        let Some((id, def, build)) = self.index(name)? else {
            return Ok(None);
        };
        let stats = match Source::get(&self.source(), &keys::stats_key(id))? {
            Some(raw) => IndexStats::decode(&raw)
                .map_err(|_| crate::engine::corrupt(&keys::stats_key(id), "search statistics"))?,
            None => IndexStats::new(def.fields.len()),
        };
        let (building, keys_scanned) = match &build {
            Build::Done => (false, 0),
            Build::Running { scanned, .. } => (true, *scanned),
        };
        let percent_indexed = if building {
            (keys_scanned as f64 / keys_stored.max(1) as f64).min(0.99)
        } else {
            1.0
        };
        Ok(Some(IndexInfo {
            id,
            def,
            stats,
            building,
            keys_scanned,
            percent_indexed,
        }))
    }

    /// FT._LIST: every index, by creation.
    pub fn search_indexes(&self) -> Result<Vec<IndexSummary>> {
        Ok(self
            .catalog()?
            .indexes
            .values()
            .map(|s| IndexSummary {
                name: s.indexer.def.name.clone(),
                id: s.id(),
                building: s.build != Build::Done,
            })
            .collect())
    }

    /// Backfills and purges that are not finished.
    pub fn pending_search_work(&self) -> Result<Vec<SearchWork>> {
        let catalog = self.catalog()?;
        let mut out: Vec<SearchWork> = catalog
            .indexes
            .values()
            .filter(|s| s.build != Build::Done)
            .map(|s| SearchWork::Backfill { id: s.id() })
            .collect();
        out.extend(catalog.dropped.iter().map(|&id| SearchWork::Purge { id }));
        Ok(out)
    }

    /// What the server must embed before proposing a write of `value`
    /// at `key`: (index id, vector field id, text) per `EMBED` field of
    /// every index that covers the key.
    pub fn embedding_targets(&self, key: &[u8], value: &[u8]) -> Result<Vec<(u32, u16, String)>> {
        let catalog = self.catalog()?;
        let mut out = Vec::new();
        for s in catalog.indexes.values() {
            if s.embed_fields.is_empty() || !s.indexer.def.covers(key) {
                continue;
            }
            for (field, text) in strata_search::embed_sources(&s.indexer.def, value) {
                out.push((s.id(), field, text));
            }
        }
        Ok(out)
    }

    /// The records the next backfill page of index `id` will index (as of
    /// this view), so the server can embed their texts first.
    pub fn backfill_preview(&self, id: IndexId, keys_max: usize) -> Result<Vec<(Bytes, Record)>> {
        let catalog = self.catalog()?;
        let Some(s) = catalog.indexes.get(&id) else {
            return Ok(Vec::new());
        };
        let Build::Running { after, .. } = &s.build else {
            return Ok(Vec::new());
        };
        let def = &s.indexer.def;
        let mut out = Vec::new();
        let start = match after {
            Some(a) => {
                let mut k = data_key(a);
                k.push(0);
                k
            }
            None => vec![crate::engine::TAG_DATA],
        };
        let end = vec![crate::engine::TAG_DATA + 1];
        Source::scan(&self.source(), &start, &end, &mut |k, raw| {
            let user = &k[1..];
            if def.covers(user) {
                let record = decode(k, Bytes::copy_from_slice(raw))?;
                out.push((Bytes::copy_from_slice(user), record));
            }
            Ok(out.len() < keys_max)
        })?;
        Ok(out)
    }
}

impl Snapshot {
    /// Whether every index equals the index recomputed from the stored
    /// records (entries and statistics; an `EMBED` field's vectors are
    /// taken as stored, since no model runs here). `Err` names the first
    /// difference. A full scan: for tests and `strata check`, never on a
    /// request path.
    pub fn search_matches_recount(&self) -> Result<std::result::Result<(), String>> {
        let catalog = self.catalog()?;
        let src = self.source();
        for s in catalog.indexes.values() {
            let ix = &s.indexer;
            let (start, end) = keys::index_range(ix.id);
            let mut stored = std::collections::BTreeMap::new();
            Source::scan(&src, &start, &end, &mut |k, v| {
                stored.insert(k.to_vec(), v.to_vec());
                Ok(true)
            })?;
            let mut expected = std::collections::BTreeMap::new();
            let mut stats = IndexStats::new(ix.def.fields.len());
            let first = vec![crate::engine::TAG_DATA];
            let last = vec![crate::engine::TAG_DATA + 1];
            let mut failure = None;
            Source::scan(&src, &first, &last, &mut |k, raw| {
                let user = &k[1..];
                if !s.build.indexes(user) || !ix.def.covers(user) {
                    return Ok(true);
                }
                let record = decode(k, Bytes::copy_from_slice(raw))?;
                let vectors: Vec<(u16, Vec<f32>)> = s
                    .embed_fields
                    .iter()
                    .filter_map(|&(f, _)| {
                        let raw = stored.get(&keys::vector_key(ix.id, f, user))?;
                        let floats = raw
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        Some((f, floats))
                    })
                    .collect();
                let input = strata_search::DocInput {
                    value: &record.value,
                    embeddings: &vectors,
                };
                let (entries, delta) = ix.entries(user, Some(input));
                stats.apply(&delta);
                expected.extend(entries);
                if expected.len() > 50_000_000 {
                    failure = Some("index too large to recount".to_string());
                    return Ok(false);
                }
                Ok(true)
            })?;
            if let Some(f) = failure {
                return Ok(Err(f));
            }
            let stats_key = keys::stats_key(ix.id);
            match stored.remove(&stats_key) {
                Some(raw) if IndexStats::decode(&raw).ok().as_ref() == Some(&stats) => {}
                other => {
                    return Ok(Err(format!(
                        "index {}: statistics {:?}, recounted {stats:?}",
                        ix.def.name,
                        other.map(|r| IndexStats::decode(&r))
                    )));
                }
            }
            if stored != expected {
                let missing = expected.keys().find(|k| !stored.contains_key(*k));
                let extra = stored.keys().find(|k| !expected.contains_key(*k));
                let differs = expected
                    .iter()
                    .find(|(k, v)| stored.get(*k).is_some_and(|sv| sv != *v));
                return Ok(Err(format!(
                    "index {}: {} entries stored, {} recounted; first missing {:?}, first extra {:?}, first different {:?}",
                    ix.def.name,
                    stored.len(),
                    expected.len(),
                    missing.map(|k| String::from_utf8_lossy(k).into_owned()),
                    extra.map(|k| String::from_utf8_lossy(k).into_owned()),
                    differs.map(|(k, _)| String::from_utf8_lossy(k).into_owned()),
                )));
            }
        }
        Ok(Ok(()))
    }
}
