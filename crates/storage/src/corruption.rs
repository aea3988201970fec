//! Corruption found at run time: counted for INFO, logged (rate-limited).
//!
//! Block checksums make the engine refuse to return damaged data: a read
//! that touches a damaged block fails. Without this, that failure looked
//! like any other error: the server kept answering PING, DBSIZE and INFO as
//! if healthy while most keys could not be read.
//!
//! The counter is process-wide, not per store: every engine error becomes a
//! [`StorageError`](crate::StorageError) through one conversion
//! (`From<fjall::Error>`), which has no store at hand. A server runs one
//! store, so the figure is that store's.

use std::sync::atomic::{AtomicU64, Ordering};

/// At most one ERROR line per this interval; the others are counted.
const LOG_INTERVAL_MS: u64 = 10_000;

static ERRORS: AtomicU64 = AtomicU64::new(0);
/// When the last ERROR line was written (ms since the Unix epoch); 0: never.
static LAST_LOG_MS: AtomicU64 = AtomicU64::new(0);
/// Errors since the last ERROR line.
static UNLOGGED: AtomicU64 = AtomicU64::new(0);

/// Corruption errors seen since the process started.
pub fn corruption_errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Whether an engine error means bytes on disk are damaged (as opposed to
/// an I/O failure, a lock, a shutdown).
pub(crate) fn is_corruption(e: &fjall::Error) -> bool {
    use fjall::{Error as F, LsmError as L};
    // Table files are immutable and complete once written: a read that
    // runs past a file's end, or finds bytes that do not parse, read a
    // damaged length or offset.
    let damaged_io = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
        )
    };
    match e {
        F::Storage(L::Io(io)) | F::Io(io) => damaged_io(io),
        F::Storage(inner) => matches!(
            inner,
            L::ChecksumMismatch { .. }
                | L::InvalidTag(_)
                | L::InvalidTrailer
                | L::InvalidHeader(_)
                | L::Decompress(_)
                | L::Unrecoverable
                | L::Utf8(_)
        ),
        F::Decompress(_)
        | F::InvalidTrailer
        | F::InvalidTag(_)
        | F::JournalRecovery(_)
        | F::JournalCorrupt(_)
        | F::Unrecoverable => true,
        _ => false,
    }
}

/// Records one corruption error, and logs it unless another was logged in
/// the last [`LOG_INTERVAL_MS`] (a damaged table fails every read that
/// touches it: thousands per second under load).
pub(crate) fn note(what: &dyn std::fmt::Display) {
    let total = ERRORS.fetch_add(1, Ordering::Relaxed) + 1;
    let unlogged = UNLOGGED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = crate::clock::now_ms();
    let last = LAST_LOG_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < LOG_INTERVAL_MS {
        return;
    }
    // One thread wins the right to log this interval.
    if LAST_LOG_MS
        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    UNLOGGED.fetch_sub(unlogged, Ordering::Relaxed);
    tracing::error!(
        total,
        since_last_report = unlogged,
        error = %what,
        "storage corruption: a read hit damaged data and was refused. \
         Stop the server and run `strata check --data-dir DIR` to find the damaged files; \
         a cluster node can be rebuilt from its peers (README, Troubleshooting)"
    );
}
