//! openraft's storage conformance suite against Strata's real log store and
//! state machine (fjall underneath, snapshot files on disk). If these pass,
//! openraft's assumptions about storage hold for ours.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use strata_replication::log_store::LogStore;
use strata_replication::state_machine::{SmStats, StateMachine};
use strata_replication::types::TypeConfig;
use strata_storage::{FsyncPolicy, ReplicatedStore, StorageConfig};

struct Builder;

fn io(e: impl std::fmt::Display) -> StorageError<TypeConfig> {
    StorageError::from_io_error(
        openraft::ErrorSubject::Store,
        openraft::ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(io)?;
        let mut config = StorageConfig::new(dir.path().join("data"));
        // Small buffers: the suite opens many stores.
        config.cache_size_bytes = 8 * 1024 * 1024;
        config.memtable_size_bytes = 4 * 1024 * 1024;
        let store = ReplicatedStore::open(config).map_err(io)?;
        let log = LogStore::new(store.log_store(), FsyncPolicy::Always).map_err(io)?;
        let sm = StateMachine::open(
            store,
            dir.path().join("snapshots"),
            Arc::new(SmStats::default()),
        )
        .await
        .map_err(io)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}
