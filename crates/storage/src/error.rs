//! Errors of the storage layer.

/// A failure of the storage layer itself (as opposed to a command that is
/// refused, which is a [`crate::MutationError`] inside an [`crate::Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine error: {0}")]
    Engine(#[from] fjall::Error),
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
    /// A direct write to a replicated store: its state changes only by
    /// applying committed Raft log entries, or replicas would diverge.
    #[error("this store is replicated; writes go through the Raft log")]
    Replicated,
    #[error("result too large: more than {limit} {what}")]
    ResultTooLarge { what: &'static str, limit: usize },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
