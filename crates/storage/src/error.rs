//! Errors of the storage layer.

/// A failure of the storage layer itself (as opposed to a command that is
/// refused, which is a [`crate::MutationError`] inside an [`crate::Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine error: {0}")]
    Engine(fjall::Error),
    /// The engine found damaged bytes (a block checksum, a bad tag): the
    /// read is refused rather than answered with wrong data. Counted and
    /// logged (see `corruption.rs`).
    #[error(
        "storage corruption detected ({0}); stop the server and run `strata check --data-dir DIR`"
    )]
    Corruption(fjall::Error),
    /// A journal file is damaged in a way a crash cannot produce. Nothing
    /// was opened and the file is untouched.
    #[error(
        "{0}. The file was left untouched. To start anyway, `strata repair --data-dir {dir}` \
         copies the journal aside and cuts it at the last valid batch, losing the writes after it; \
         a cluster node should instead be rebuilt from its peers (README, Troubleshooting)",
        dir = .0.path.parent().unwrap_or(std::path::Path::new(".")).display()
    )]
    JournalCorrupt(fjall::JournalCorruption),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes on disk that do not decode. Never silently ignored.
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt { key: String, reason: &'static str },
    /// A write or fsync failed earlier. After a failed fsync the page cache
    /// state is unknown (fsyncgate), so the store refuses all further writes
    /// until it is restarted and recovers from the journal.
    #[error("storage is read-only after a failed write or fsync ({0}); restart the server")]
    Failed(String),
    #[error("storage is shutting down")]
    ShuttingDown,
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// Another write of the same group failed on a storage error, so the
    /// group, this write included, was not committed. Nothing changed.
    #[error("not applied: a write committed with it failed on a storage error; retry")]
    NotCommitted,
    #[error("result too large: more than {limit} {what}")]
    ResultTooLarge { what: &'static str, limit: usize },
}

impl From<fjall::Error> for StorageError {
    /// Every engine error passes here, so every corruption is counted.
    fn from(e: fjall::Error) -> Self {
        if let fjall::Error::JournalCorrupt(c) = e {
            return StorageError::JournalCorrupt(c);
        }
        if crate::corruption::is_corruption(&e) {
            crate::corruption::note(&e);
            return StorageError::Corruption(e);
        }
        StorageError::Engine(e)
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
