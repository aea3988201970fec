//! Background index work (issue 21): builds new indexes over the keys
//! already stored (`Op::BackfillIndex`) and removes dropped indexes'
//! entries (`Op::PurgeIndex`), in bounded pages proposed through the
//! normal write path, so every replica applies the same pages at the same
//! log positions. The expiry sweeper's pattern: a single node drives its
//! own store; in a cluster only the leader proposes (a follower's store
//! changes only through the log), and a new leader picks the work up from
//! the cursor the catalog holds.
//!
//! Bounded: one page is at most storage's `BACKFILL_KEYS_MAX` keys or
//! `PURGE_ENTRIES_MAX` entries; a round runs at most
//! [`PAGES_PER_ROUND_MAX`] pages per index and yields between pages, so
//! client writes interleave; with nothing to do it sleeps
//! [`IDLE_INTERVAL_MS`] between looks. It stops at shutdown.
//!
//! An index with EMBED fields: when the server has an embedder, the page's
//! vectors are computed first from the keys the page will see
//! (`Store::backfill_preview`) and the page is wrapped in `Op::Embedded`
//! (a key written between the preview and the page keeps its own text's
//! vector or none: apply checks the text hash).

use std::sync::Arc;
use std::time::Duration;

use strata_protocol::resp::Reply;
use strata_storage::{BACKFILL_KEYS_MAX, Mutation, Op, Outcome, PURGE_ENTRIES_MAX, SearchWork};

use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::write_path::Pending;

pub const PAGES_PER_ROUND_MAX: usize = 64;
pub const IDLE_INTERVAL_MS: u64 = 100;

pub async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let idle = Duration::from_millis(IDLE_INTERVAL_MS);
    loop {
        tokio::select! {
            () = tokio::time::sleep(idle) => {}
            () = shutdown.recv() => return,
        }
        if !leads(&shared) {
            continue;
        }
        let work = match shared.store.pending_search_work() {
            Ok(work) if !work.is_empty() => work,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "search work: cannot read the catalog");
                continue;
            }
        };
        // A pending list only while there is work: a live one counts as a
        // submitter, which makes lone clients' inline rounds wait a pass.
        let mut pending = shared.write_path.pending();
        for item in work {
            if shutdown.is_shutdown() {
                return;
            }
            round(&shared, &mut pending, item, &shutdown).await;
        }
    }
}

/// Whether this node proposes background work: a single node always, a
/// cluster member while it leads.
fn leads(shared: &Shared) -> bool {
    match &shared.cluster {
        None => true,
        Some(node) => node.status().leader == Some(node.id()),
    }
}

/// Up to [`PAGES_PER_ROUND_MAX`] pages of one index's work, until it
/// answers 0 (done), fails (tried again next round) or the server stops.
async fn round(shared: &Shared, pending: &mut Pending, item: SearchWork, shutdown: &Shutdown) {
    for _ in 0..PAGES_PER_ROUND_MAX {
        if shutdown.is_shutdown() {
            return;
        }
        let outcome = match item {
            SearchWork::Backfill { id } => {
                backfill_page(shared, pending, id, BACKFILL_KEYS_MAX).await
            }
            SearchWork::Purge { id } => {
                let m = Mutation {
                    now_ms: strata_storage::now_ms(),
                    op: Op::PurgeIndex {
                        id,
                        entries_max: PURGE_ENTRIES_MAX,
                    },
                };
                let written = shared.write_path.write(pending, m).await;
                written.map_err(|e| e.to_string())
            }
        };
        match outcome {
            Ok(Outcome::Int(1)) => {}
            Ok(Outcome::Int(0)) => return,
            other => {
                tracing::debug!(work = ?item, outcome = ?other, "search work page not applied");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Proposes the next backfill page of at most `keys_max` keys, with its
/// vectors when the index embeds (FT.CREATE's first page too), one page
/// at a time (`Shared::backfill_turn`).
pub(crate) async fn backfill_page(
    shared: &Shared,
    pending: &mut Pending,
    id: u32,
    keys_max: u32,
) -> Result<Outcome, String> {
    let _turn = shared.backfill_turn.lock().await;
    let op = backfill_op(shared, id, keys_max)
        .await
        .map_err(|r| format!("{r:?}"))?;
    let m = Mutation {
        now_ms: strata_storage::now_ms(),
        op,
    };
    shared
        .write_path
        .write(pending, m)
        .await
        .map_err(|e| e.to_string())
}

/// The next backfill page, with its vectors when the index embeds.
async fn backfill_op(shared: &Shared, id: u32, keys_max: u32) -> Result<Op, Reply> {
    let page = Op::BackfillIndex { id, keys_max };
    if shared.embedder.is_none() {
        return Ok(page);
    }
    let preview = match shared.store.backfill_preview(id, keys_max as usize) {
        Ok(records) => records,
        Err(e) => return Err(Reply::error(format!("ERR {e}"))),
    };
    let pairs = preview
        .into_iter()
        .map(|(key, record)| (key, record.value))
        .collect();
    let m = Mutation {
        now_ms: strata_storage::now_ms(),
        op: Op::MSet {
            pairs,
            if_none_exist: false,
        },
    };
    // The preview's pairs stand in for the page to find its targets; the
    // vectors then travel with the page itself.
    match crate::embedding::plan(shared, m) {
        Ok(_) => Ok(page),
        Err(job) => {
            let embedded = crate::embedding::run(shared, job).await?;
            match embedded.op {
                Op::Embedded { embeddings, .. } => Ok(Op::Embedded {
                    op: Box::new(page),
                    embeddings: embeddings.into_iter().filter(|e| e.index == id).collect(),
                }),
                _ => Ok(page),
            }
        }
    }
}
