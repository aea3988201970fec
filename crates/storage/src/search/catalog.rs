//! The index catalog: which search indexes exist, how far each one is
//! built, its statistics, and which dropped ones still have entries.
//!
//! The catalog is replicated state: its entries are keys under
//! `strata_search::keys` (tag `s`, index id 0) in the data keyspace,
//! written by `apply` in the same batch as everything else. The writer
//! keeps a decoded copy ([`Catalog`]) so that a write checks its indexes
//! without a read; readers decode what they need from their own snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_search::codec::{Reader, put_bytes, put_varint};
use strata_search::keys;
use strata_search::schema::{FieldId, FieldKind, VectorDef};
use strata_search::{IndexDef, IndexId, IndexStats, Indexer};

use crate::engine::corrupt;
use crate::error::Result;

/// Indexes one store may hold. Why a limit: every write to a key checks
/// every index's prefixes (the cost of an index on keys it does not
/// cover), and each index keeps a decoded definition in memory.
pub const SEARCH_INDEXES_MAX: usize = 64;

/// How far an index's backfill has come. Writes index a key only if the
/// backfill has passed it (`indexes`): the page that passes a key indexes
/// it, a write after that keeps it exact (the FoundationDB record layer's
/// rule), so every key is indexed exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Build {
    Done,
    Running {
        /// The last user key the backfill indexed; None: not started.
        after: Option<Vec<u8>>,
        /// Keys examined so far (FT.INFO's progress).
        scanned: u64,
    },
}

impl Build {
    /// Whether a write to `key` must keep this index's entries for it.
    pub fn indexes(&self, key: &[u8]) -> bool {
        match self {
            Build::Done => true,
            Build::Running { after, .. } => after.as_deref().is_some_and(|a| key <= a),
        }
    }

    pub fn encode(&self) -> Option<Vec<u8>> {
        let Build::Running { after, scanned } = self else {
            return None;
        };
        let mut out = Vec::new();
        put_varint(&mut out, *scanned);
        match after {
            None => out.push(0),
            Some(a) => {
                out.push(1);
                put_bytes(&mut out, a);
            }
        }
        Some(out)
    }

    pub fn decode(raw: &[u8]) -> std::result::Result<Build, strata_search::codec::DecodeError> {
        let mut r = Reader::new(raw);
        let scanned = r.varint()?;
        let after = match r.u8()? {
            0 => None,
            1 => Some(r.bytes(crate::config::KEY_SIZE_BYTES_LIMIT)?.to_vec()),
            _ => return Err(strata_search::codec::DecodeError("unknown build state")),
        };
        r.finish()?;
        Ok(Build::Running { after, scanned })
    }
}

/// One index as the writer keeps it.
#[derive(Clone)]
pub struct IndexState {
    pub indexer: Arc<Indexer>,
    pub stats: IndexStats,
    pub build: Build,
    /// `(vector field, source text field)` of every `EMBED` field.
    pub embed_fields: Vec<(FieldId, FieldId)>,
}

impl IndexState {
    pub fn new(id: IndexId, def: IndexDef, stats: IndexStats, build: Build) -> IndexState {
        let embed_fields = def
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.kind {
                FieldKind::Vector(VectorDef {
                    embed: Some(source),
                    ..
                }) => Some((i as FieldId, *source)),
                _ => None,
            })
            .collect();
        IndexState {
            indexer: Arc::new(Indexer::new(id, def)),
            stats,
            build,
            embed_fields,
        }
    }

    pub fn id(&self) -> IndexId {
        self.indexer.id
    }
}

/// The decoded catalog. Cloned per group only when a group changes it
/// (`Arc::make_mut`): a group that fails leaves the writer's copy as it was.
#[derive(Clone, Default)]
pub struct Catalog {
    /// By id: creation order, and the order writes visit them in.
    pub indexes: BTreeMap<IndexId, Arc<IndexState>>,
    /// Dropped indexes whose entries are not all purged yet.
    pub dropped: BTreeSet<IndexId>,
    /// The id the next FT.CREATE gets (ids are never reused).
    pub next_id: IndexId,
}

impl Catalog {
    /// No index, ids from 1: a new store, or after FLUSHALL.
    pub fn empty() -> Catalog {
        Catalog {
            next_id: 1,
            ..Catalog::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<IndexState>> {
        self.indexes.values().find(|s| s.indexer.def.name == name)
    }

    /// Decodes the catalog from any source of the data keyspace (the
    /// writer's latest state at open and after an install, or a reader's
    /// snapshot). Damaged entries are corruption: an index that silently
    /// vanished would answer wrong results forever.
    pub fn load(source: &impl Source) -> Result<Catalog> {
        let mut catalog = Catalog {
            next_id: 1,
            ..Catalog::default()
        };
        if let Some(raw) = source.get(&keys::next_id_key())? {
            let raw: [u8; 4] = raw
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(&keys::next_id_key(), "next index id is not 4 bytes"))?;
            catalog.next_id = u32::from_le_bytes(raw);
        }
        let mut defs = Vec::new();
        source.scan_prefix(&keys::definitions_prefix(), &mut |k, v| {
            let (id, def) = IndexDef::decode(v)
                .map_err(|_| corrupt(k, "search index definition does not decode"))?;
            defs.push((id, def));
            Ok(true)
        })?;
        for (id, def) in defs {
            let stats = match source.get(&keys::stats_key(id))? {
                Some(raw) => IndexStats::decode(&raw)
                    .map_err(|_| corrupt(&keys::stats_key(id), "search index statistics"))?,
                None => IndexStats::new(def.fields.len()),
            };
            let build = match source.get(&keys::build_key(id))? {
                Some(raw) => Build::decode(&raw)
                    .map_err(|_| corrupt(&keys::build_key(id), "search index build state"))?,
                None => Build::Done,
            };
            if id == keys::CATALOG_ID || id >= catalog.next_id {
                return Err(corrupt(
                    &keys::definition_key(&def.name),
                    "index id out of range",
                ));
            }
            catalog
                .indexes
                .insert(id, Arc::new(IndexState::new(id, def, stats, build)));
        }
        let prefix = keys::dropped_prefix();
        source.scan_prefix(&prefix, &mut |k, _| {
            let id = keys::catalog_id_after(k, &prefix)
                .map_err(|_| corrupt(k, "dropped search index mark"))?;
            catalog.dropped.insert(id);
            Ok(true)
        })?;
        Ok(catalog)
    }
}

/// A scan's visitor: true to go on.
pub type Visit<'v> = &'v mut dyn FnMut(&[u8], &[u8]) -> Result<bool>;

/// Read access to the data keyspace, latest or at a snapshot.
pub trait Source {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visits `start <= key < end` in order until `visit` answers false.
    fn scan(&self, start: &[u8], end: &[u8], visit: Visit<'_>) -> Result<()>;

    fn scan_prefix(&self, prefix: &[u8], visit: Visit<'_>) -> Result<()> {
        // Every prefix here starts with the tag `s`, so it has an end.
        debug_assert!(prefix.first().is_some_and(|&t| t < u8::MAX));
        match prefix_end(prefix) {
            Some(end) => self.scan(prefix, &end, visit),
            None => Ok(()),
        }
    }
}

/// The first key after every key that starts with `prefix` (None: no
/// such key, the prefix is all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The writer's latest state.
pub struct Latest<'a>(pub &'a fjall::Keyspace);

impl Source for Latest<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], visit: Visit<'_>) -> Result<()> {
        for guard in self.0.range::<&[u8], _>(start..end) {
            let (k, v) = guard.into_inner()?;
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
}

/// A reader's snapshot.
pub struct AtSnapshot<'a> {
    pub snap: &'a fjall::Snapshot,
    pub data: &'a fjall::Keyspace,
}

impl Source for AtSnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        use fjall::Readable;
        Ok(self.snap.get(self.data, key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], visit: Visit<'_>) -> Result<()> {
        use fjall::Readable;
        for guard in self.snap.range::<&[u8], _>(self.data, start..end) {
            let (k, v) = guard.into_inner()?;
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }
}
