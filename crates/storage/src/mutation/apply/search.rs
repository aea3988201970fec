//! The search ops: the catalog changes and the pages of background work,
//! applied by storage's state (`State::create_index` ...), and the
//! vectors an embedded op carries.

use super::super::{EMBEDDINGS_MAX, Embedding, MutationError, Op, Outcome, State};
use super::Applier;

/// Vector length an embedding may have (`strata_search::limits::VECTOR_DIM_MAX`).
const EMBEDDING_DIM_MAX: usize = 4096;

impl<S: State> Applier<'_, S> {
    pub(super) fn create_index(&mut self, definition: &[u8]) -> crate::Result<Outcome> {
        refuse!(self.state.create_index(definition)?);
        self.writes += 1;
        Ok(Outcome::Ok)
    }

    pub(super) fn drop_index(&mut self, name: &str) -> crate::Result<Outcome> {
        refuse!(self.state.drop_index(name)?);
        self.writes += 1;
        Ok(Outcome::Ok)
    }

    pub(super) fn backfill_index(&mut self, id: u32, keys_max: u32) -> crate::Result<Outcome> {
        self.writes += 1;
        let more = self.state.backfill_index(id, keys_max)?;
        Ok(Outcome::Int(i64::from(more)))
    }

    pub(super) fn purge_index(&mut self, id: u32, entries_max: u32) -> crate::Result<Outcome> {
        self.writes += 1;
        let more = self.state.purge_index(id, entries_max)?;
        Ok(Outcome::Int(i64::from(more)))
    }

    /// `op` with its vectors in reach of the state's index upkeep for its
    /// duration. Refused: an embedded op inside another, a FLUSHALL (it
    /// runs between groups), too many or malformed vectors.
    pub(super) fn embedded(&mut self, op: &Op, embeddings: &[Embedding]) -> crate::Result<Outcome> {
        if matches!(op, Op::Embedded { .. } | Op::FlushAll) {
            return Ok(Outcome::Refused(MutationError::NotInTransaction));
        }
        if embeddings.len() > EMBEDDINGS_MAX
            || embeddings.iter().any(|e| {
                e.vector.len() > EMBEDDING_DIM_MAX || e.vector.iter().any(|x| !x.is_finite())
            })
        {
            return Ok(Outcome::Refused(MutationError::TooManyEmbeddings {
                max: EMBEDDINGS_MAX,
            }));
        }
        self.state.set_embeddings(embeddings.to_vec());
        let outcome = self.op(op);
        self.state.set_embeddings(Vec::new());
        outcome
    }
}
