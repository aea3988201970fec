//! Search indexes as data (issue 21): storage's side of
//! `strata-search`. The crate computes entries and evaluates queries;
//! this module decides where the entries go (the group's batch, beside
//! the record), keeps the catalog, and reads through snapshots.
//!
//! - `catalog`: which indexes exist, their build state and statistics.
//! - `upkeep`: a group's index writes: on every put and delete, and the
//!   ops FT.CREATE, FT.DROPINDEX, backfill pages and purge pages.
//! - `read`: FT.SEARCH, FT.INFO, FT._LIST and the drivers' questions,
//!   each from one snapshot.
//! - `cache`: decoded posting lists, exact for the view a query reads.

pub(crate) mod cache;
pub(crate) mod catalog;
mod read;
pub(crate) mod upkeep;

pub use catalog::SEARCH_INDEXES_MAX;
pub use read::{IndexInfo, IndexSummary, SearchAnswer, SearchError, SearchHit, SearchWork};
pub use upkeep::{BACKFILL_KEYS_MAX, CREATE_BACKFILL_KEYS_MAX, PURGE_ENTRIES_MAX};
