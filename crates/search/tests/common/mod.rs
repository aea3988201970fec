//! The test oracle: the data keyspace as a `BTreeMap`, with the index
//! entries kept the way storage's `apply` will keep them (changes applied
//! in order, statistics summed under the stats key). Not a product path.

#![allow(dead_code)]

use std::collections::BTreeMap;

use strata_search::entries::{DocInput, IndexStats, Indexer};
use strata_search::eval::{IndexRead, ReadError};
use strata_search::keys;

#[derive(Default, Clone, Debug, PartialEq)]
pub struct Memory {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The records themselves: user key -> value.
    pub values: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl IndexRead for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.entries.get(key).cloned())
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), ReadError> {
        if start >= end {
            return Ok(());
        }
        for (k, v) in self.entries.range(start.to_vec()..end.to_vec()) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl Memory {
    /// Writes (Some) or deletes (None) `key`, keeping the index exact as
    /// `apply` will: the changes from old to new value, and the stats.
    pub fn write(&mut self, ix: &Indexer, key: &[u8], value: Option<&[u8]>) {
        let old = self.values.get(key).cloned();
        let changes = ix.changes(
            key,
            old.as_deref().map(DocInput::plain),
            value.map(DocInput::plain),
        );
        for d in &changes.deletes {
            assert!(
                self.entries.remove(d).is_some(),
                "deleting an entry that is not there: {d:?}"
            );
        }
        for (k, v) in &changes.puts {
            self.entries.insert(k.clone(), v.clone());
        }
        let stats_key = keys::stats_key(ix.id);
        let mut stats = match self.entries.get(&stats_key) {
            Some(raw) => IndexStats::decode(raw).expect("stats decode"),
            None => IndexStats::new(ix.def.fields.len()),
        };
        stats.apply(&changes.stats);
        self.entries.insert(stats_key, stats.encode());
        match value {
            Some(v) => self.values.insert(key.to_vec(), v.to_vec()),
            None => self.values.remove(key),
        };
    }

    /// The index as computed from the final values alone.
    pub fn recomputed(&self, ix: &Indexer) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stats = IndexStats::new(ix.def.fields.len());
        for (k, v) in &self.values {
            let (entries, contribution) = ix.entries(k, Some(DocInput::plain(v)));
            out.extend(entries);
            stats.apply(&contribution);
        }
        out.insert(keys::stats_key(ix.id), stats.encode());
        out
    }
}

pub fn args(s: &str) -> Vec<Vec<u8>> {
    s.split_whitespace()
        .map(|a| a.as_bytes().to_vec())
        .collect()
}

pub fn indexer(id: u32, create: &str) -> Indexer {
    let a = args(create);
    let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
    let def = strata_search::IndexDef::parse(&refs).expect("FT.CREATE parses");
    Indexer::new(id, def)
}
