//! Index upkeep inside a group: every `put` and `delete` of a key that an
//! index covers changes that index's entries in the group's own batch,
//! and the catalog ops (create, drop, backfill, purge) run here too.
//!
//! Why in the group and not after it: the entries must be in the same
//! atomic batch as the record, so that no crash, replica or snapshot ever
//! holds one without the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_search::document::floats_from_blob;
use strata_search::keys;
use strata_search::schema::FieldId;
use strata_search::{DocInput, IndexDef, IndexId, IndexStats, embed_sources, text_hash};

use super::cache::{self, ShardSet};
use super::catalog::{Build, Catalog, IndexState, Latest, SEARCH_INDEXES_MAX, Source};
use crate::engine::{Engine, TAG_DATA, data_key, decode, tagged, user_key};
use crate::error::Result;
use crate::mutation::{Embedding, MutationError};
use crate::record::Record;
use fjall::OwnedWriteBatch;

/// Keys the first backfill page takes: the server proposes it right
/// after FT.CREATE, so an index over few keys is built when FT.CREATE
/// answers.
pub const CREATE_BACKFILL_KEYS_MAX: u32 = 256;
/// Bounds on the pages the background driver asks for.
pub const BACKFILL_KEYS_MAX: u32 = 4096;
pub const PURGE_ENTRIES_MAX: u32 = 65_536;

/// Vectors of one document's `EMBED` fields, by field id.
type Vectors = Vec<(FieldId, Vec<f32>)>;

/// A group's search state: the catalog as this group changes it, and
/// what it writes at the end.
#[derive(Default)]
pub struct Upkeep {
    pub catalog: Arc<Catalog>,
    /// Statistics of the indexes this group changed, written once.
    stats: BTreeMap<IndexId, IndexStats>,
    /// Indexes whose build state this group changed.
    builds: BTreeSet<IndexId>,
    /// The current op's vectors (`Op::Embedded`), empty otherwise.
    pub embeddings: Vec<Embedding>,
    /// Vector entries this group wrote (None: removed): the batch cannot
    /// be read back, and a key written twice needs its first vector.
    vectors: HashMap<Vec<u8>, Option<Vec<f32>>>,
    /// Vectors of documents this group removed, by (index, field, text
    /// hash): a RENAME carries its vector to the new key.
    removed_vectors: HashMap<(IndexId, FieldId, u64), Vec<f32>>,
    /// Posting lists this group changed, by cache shard (`cache.rs`).
    pub lists_changed: ShardSet,
}

impl Upkeep {
    pub fn new(catalog: Arc<Catalog>) -> Upkeep {
        Upkeep {
            catalog,
            ..Upkeep::default()
        }
    }
}

/// What the upkeep writes through: the engine (for reads of committed
/// entries) and the group's batch.
pub struct GroupIo<'a, 'e> {
    pub engine: &'e Engine,
    pub batch: &'a mut OwnedWriteBatch,
}

impl Upkeep {
    /// Keeps every index that covers `key` exact for its value going from
    /// `old` to `new` (None: absent).
    pub(crate) fn index_write(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        key: &Bytes,
        old: Option<&Bytes>,
        new: Option<&Bytes>,
    ) -> Result<()> {
        if old == new && !self.embeddings.iter().any(|e| e.key == *key) {
            // The same value again (EXPIRE, PERSIST, a same-value SET):
            // entries mirror the value, vectors included.
            return Ok(());
        }
        let targets: Vec<Arc<IndexState>> = self
            .catalog
            .indexes
            .values()
            .filter(|ix| ix.indexer.def.covers(key) && ix.build.indexes(key))
            .cloned()
            .collect();
        for ix in targets {
            self.index_one(io, &ix, key, old, new)?;
        }
        Ok(())
    }

    fn index_one(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        ix: &IndexState,
        key: &Bytes,
        old: Option<&Bytes>,
        new: Option<&Bytes>,
    ) -> Result<()> {
        let id = ix.id();
        let (old_vectors, new_vectors) = if ix.embed_fields.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.vectors_for(io.engine, ix, key, old, new)?
        };
        let changes = ix.indexer.changes(
            key,
            old.map(|v| DocInput {
                value: v,
                embeddings: &old_vectors,
            }),
            new.map(|v| DocInput {
                value: v,
                embeddings: &new_vectors,
            }),
        );
        for k in changes.deletes {
            self.note_list(&k, key);
            io.batch.remove(&io.engine.data, k);
        }
        for (k, v) in changes.puts {
            self.note_list(&k, key);
            io.batch.insert(&io.engine.data, k, v);
        }
        if !changes.stats.is_zero() {
            let stats = self.stats.entry(id).or_insert_with(|| ix.stats.clone());
            stats.apply(&changes.stats);
        }
        Ok(())
    }

    /// Notes the posting list `entry` belongs to as changed, for the
    /// posting cache (`cache.rs`).
    fn note_list(&mut self, entry: &[u8], user_key: &[u8]) {
        if let Some(list) = cache::list_of(entry, user_key) {
            self.lists_changed.insert(cache::shard_of(list));
        }
    }

    /// The vectors of `EMBED` fields before and after the write: the old
    /// ones as stored; the new one computed for this text by the server
    /// (`Op::Embedded`), or kept from the old value or a removed
    /// document when the text is the same, else none.
    fn vectors_for(
        &mut self,
        engine: &Engine,
        ix: &IndexState,
        key: &Bytes,
        old: Option<&Bytes>,
        new: Option<&Bytes>,
    ) -> Result<(Vectors, Vectors)> {
        let id = ix.id();
        let def = &ix.indexer.def;
        let old_texts = old.map(|v| embed_sources(def, v)).unwrap_or_default();
        let new_texts = new.map(|v| embed_sources(def, v)).unwrap_or_default();
        let mut old_vectors = Vec::new();
        let mut new_vectors = Vec::new();
        for &(field, _) in &ix.embed_fields {
            let dim = vector_dim(def, field);
            let entry = keys::vector_key(id, field, key);
            let old_vector = match old {
                Some(_) => self.stored_vector(engine, &entry, dim)?,
                None => None,
            };
            let old_hash = text_of(&old_texts, field).map(text_hash);
            let new_hash = text_of(&new_texts, field).map(text_hash);
            let computed = new_hash.and_then(|h| {
                self.embeddings
                    .iter()
                    .find(|e| {
                        e.key == *key && e.index == id && e.field == field && e.text_hash == h
                    })
                    .map(|e| e.vector.clone())
            });
            let kept = match (new_hash, &old_vector) {
                (Some(h), Some(v)) if old_hash == Some(h) => Some(v.clone()),
                (Some(h), _) => self.removed_vectors.get(&(id, field, h)).cloned(),
                (None, _) => None,
            };
            let new_vector = computed
                .or(kept)
                .filter(|v| v.len() == dim && v.iter().all(|x| x.is_finite()));
            if let (Some(v), Some(h), None) = (&old_vector, old_hash, new) {
                self.removed_vectors.insert((id, field, h), v.clone());
            }
            if let Some(v) = old_vector {
                old_vectors.push((field, v));
            }
            self.vectors.insert(entry, new_vector.clone());
            if let Some(v) = new_vector {
                new_vectors.push((field, v));
            }
        }
        Ok((old_vectors, new_vectors))
    }

    fn stored_vector(&self, engine: &Engine, entry: &[u8], dim: usize) -> Result<Option<Vec<f32>>> {
        if let Some(v) = self.vectors.get(entry) {
            return Ok(v.clone());
        }
        let raw = Latest(&engine.data).get(entry)?;
        Ok(raw.and_then(|r| floats_from_blob(dim as u32, &r)))
    }

    /// FT.CREATE, applied.
    pub(crate) fn create_index(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        keys_stored: u64,
        definition: &[u8],
    ) -> Result<std::result::Result<(), MutationError>> {
        let def = match IndexDef::decode(definition) {
            Ok((_, def)) => def,
            Err(e) => {
                return Ok(Err(MutationError::BadIndexDefinition {
                    reason: e.to_string(),
                }));
            }
        };
        let catalog = &self.catalog;
        if catalog.by_name(&def.name).is_some() {
            return Ok(Err(MutationError::IndexExists));
        }
        let id = catalog.next_id.max(1);
        if catalog.indexes.len() >= SEARCH_INDEXES_MAX || id == IndexId::MAX {
            return Ok(Err(MutationError::IndexLimit {
                max: SEARCH_INDEXES_MAX,
            }));
        }
        let data = &io.engine.data;
        io.batch
            .insert(data, keys::definition_key(&def.name), def.encode(id));
        io.batch
            .insert(data, keys::next_id_key(), (id + 1).to_le_bytes().to_vec());
        let stats = IndexStats::new(def.fields.len());
        io.batch.insert(data, keys::stats_key(id), stats.encode());
        // An empty store has nothing to backfill; otherwise the server
        // proposes backfill pages (`Op::BackfillIndex`) right after.
        let build = if keys_stored == 0 {
            Build::Done
        } else {
            Build::Running {
                after: None,
                scanned: 0,
            }
        };
        let state = IndexState::new(id, def, stats, build);
        let catalog = Arc::make_mut(&mut self.catalog);
        catalog.next_id = id + 1;
        catalog.indexes.insert(id, Arc::new(state));
        self.builds.insert(id);
        Ok(Ok(()))
    }

    /// FT.DROPINDEX, applied: gone at once; entries purged later.
    pub(crate) fn drop_index(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        name: &str,
    ) -> Result<std::result::Result<(), MutationError>> {
        let Some(id) = self.catalog.by_name(name).map(|s| s.id()) else {
            return Ok(Err(MutationError::UnknownIndex));
        };
        let data = &io.engine.data;
        io.batch.remove(data, keys::definition_key(name));
        io.batch.remove(data, keys::build_key(id));
        io.batch.insert(data, keys::dropped_key(id), Vec::new());
        let catalog = Arc::make_mut(&mut self.catalog);
        catalog.indexes.remove(&id);
        catalog.dropped.insert(id);
        self.stats.remove(&id);
        self.builds.remove(&id);
        Ok(Ok(()))
    }

    /// One page of a backfill: indexes up to `keys_max` stored keys the
    /// index covers after its cursor. True while keys remain.
    pub(crate) fn backfill_page(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        overlay: &HashMap<Bytes, Option<Record>>,
        id: IndexId,
        keys_max: u32,
    ) -> Result<bool> {
        let Some(ix) = self.catalog.indexes.get(&id).cloned() else {
            return Ok(false);
        };
        let Build::Running { after, scanned } = ix.build.clone() else {
            return Ok(false);
        };
        let keys_max = keys_max.clamp(1, BACKFILL_KEYS_MAX) as usize;
        let (mut page, window_end) =
            committed_page(io.engine, &ix.indexer.def, after.as_deref(), keys_max)?;
        // The group's own writes override the engine; keys it created in
        // the window are in the page too (their puts skipped this index:
        // the cursor had not passed them).
        for (k, v) in overlay {
            let in_window = after.as_deref().is_none_or(|a| k.as_ref() > a)
                && window_end.as_deref().is_none_or(|e| k.as_ref() <= e);
            if in_window && ix.indexer.def.covers(k) {
                page.insert(k.clone(), v.clone());
            }
        }
        let examined = page.len() as u64;
        for (k, record) in &page {
            if let Some(r) = record {
                self.index_one(io, &ix, k, None, Some(&r.value))?;
            }
        }
        let build = match window_end {
            Some(end) => Build::Running {
                after: Some(end),
                scanned: scanned.saturating_add(examined),
            },
            None => Build::Done,
        };
        let more = build != Build::Done;
        self.set_build(id, build);
        Ok(more)
    }
}

/// Up to `keys_max` committed records the definition covers after
/// `after`, and the last key taken if the limit cut the scan short.
#[allow(clippy::type_complexity)]
fn committed_page(
    engine: &Engine,
    def: &IndexDef,
    after: Option<&[u8]>,
    keys_max: usize,
) -> Result<(BTreeMap<Bytes, Option<Record>>, Option<Vec<u8>>)> {
    let mut page = BTreeMap::new();
    for (start, end) in covered_ranges(&def.prefixes) {
        let lower = match after.map(data_key) {
            Some(a) if a >= start => Bound::Excluded(a),
            _ => Bound::Included(start),
        };
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Excluded(vec![TAG_DATA + 1]),
        };
        for guard in engine.data.range::<Vec<u8>, _>((lower, upper)) {
            if page.len() == keys_max {
                // Keys remain: the page ends at its last key.
                let last = page.keys().next_back().map(|k: &Bytes| k.to_vec());
                debug_assert!(last.is_some(), "keys_max >= 1");
                return Ok((page, last));
            }
            let (k, raw) = guard.into_inner()?;
            let user = user_key(&k, k.clone().into())?;
            page.insert(user, Some(decode(&k, raw.into())?));
        }
    }
    Ok((page, None))
}

impl Upkeep {
    fn set_build(&mut self, id: IndexId, build: Build) {
        let catalog = Arc::make_mut(&mut self.catalog);
        if let Some(state) = catalog.indexes.get_mut(&id) {
            Arc::make_mut(state).build = build;
            self.builds.insert(id);
        }
    }

    /// One page of a dropped index's purge. True while entries remain.
    pub(crate) fn purge_page(
        &mut self,
        io: &mut GroupIo<'_, '_>,
        id: IndexId,
        entries_max: u32,
    ) -> Result<bool> {
        if !self.catalog.dropped.contains(&id) {
            return Ok(false);
        }
        let entries_max = entries_max.clamp(1, PURGE_ENTRIES_MAX) as usize;
        let (start, end) = keys::index_range(id);
        let mut removed = 0usize;
        for guard in io.engine.data.range::<Vec<u8>, _>(start..end) {
            let k = guard.key()?;
            io.batch.remove(&io.engine.data, k);
            removed += 1;
            if removed == entries_max {
                break;
            }
        }
        if removed > 0 {
            return Ok(true);
        }
        // Nothing committed is left, and no group writes entries of a
        // dropped index (it left the catalog with the drop's group).
        io.batch.remove(&io.engine.data, keys::dropped_key(id));
        Arc::make_mut(&mut self.catalog).dropped.remove(&id);
        Ok(false)
    }

    /// Puts the group's statistics and build states into its batch, and
    /// hands back the catalog as the group leaves it.
    pub(crate) fn finish(&mut self, io: &mut GroupIo<'_, '_>) -> Arc<Catalog> {
        let stats = std::mem::take(&mut self.stats);
        let builds = std::mem::take(&mut self.builds);
        if stats.is_empty() && builds.is_empty() {
            return self.catalog.clone();
        }
        let data = &io.engine.data;
        let catalog = Arc::make_mut(&mut self.catalog);
        for (id, s) in stats {
            if let Some(state) = catalog.indexes.get_mut(&id) {
                io.batch.insert(data, keys::stats_key(id), s.encode());
                Arc::make_mut(state).stats = s;
            }
        }
        for id in builds {
            if let Some(state) = catalog.indexes.get(&id) {
                match state.build.encode() {
                    Some(raw) => io.batch.insert(data, keys::build_key(id), raw),
                    None => io.batch.remove(data, keys::build_key(id)),
                }
            }
        }
        self.catalog.clone()
    }
}

fn vector_dim(def: &IndexDef, field: FieldId) -> usize {
    match def.fields.get(usize::from(field)).map(|f| &f.kind) {
        Some(strata_search::schema::FieldKind::Vector(v)) => v.dim as usize,
        _ => 0,
    }
}

fn text_of(texts: &[(FieldId, String)], field: FieldId) -> Option<&str> {
    texts
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, t)| t.as_str())
}

/// The data-key ranges the prefixes cover, ascending and disjoint (a
/// prefix inside another is dropped); no prefixes: every data key.
fn covered_ranges(prefixes: &[Vec<u8>]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    if prefixes.is_empty() {
        return vec![(vec![TAG_DATA], Some(vec![TAG_DATA + 1]))];
    }
    let mut sorted: Vec<&Vec<u8>> = prefixes.iter().collect();
    sorted.sort();
    let mut kept: Vec<&Vec<u8>> = Vec::new();
    for p in sorted {
        if !kept.last().is_some_and(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept.into_iter()
        .map(|p| {
            let start = tagged(TAG_DATA, p);
            let end = super::catalog::prefix_end(&start);
            (start, end)
        })
        .collect()
}
