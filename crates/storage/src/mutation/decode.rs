//! Decoding that is strict about its input: exact length, bounded nesting.

use serde::Deserialize;

/// Decodes a postcard value that must fill `raw` exactly. postcard's
/// `from_bytes` ignores bytes after the value, and bytes that decode only
/// in part are not the value that was written (docs/format.md: decoding is
/// strict everywhere).
pub(crate) fn decode_exact<'a, T: Deserialize<'a>>(raw: &'a [u8]) -> Result<T, postcard::Error> {
    match postcard::take_from_bytes(raw)? {
        (value, []) => Ok(value),
        // postcard's own error for input that does not match the type.
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// Deepest nesting that decoding accepts, counting each transaction
/// inside a transaction (`Op::Exec` in a `Step::Write`) and each answer
/// list inside an answer list (`Outcome::Many`) as one level. Why: both
/// types are recursive and decoding recurses once per level, so a log
/// entry, a peer frame or a dedupe record of 20 KiB nested 5,000 deep
/// overflowed the stack and aborted the process (found by the fuzz target
/// `disk_records`). Real values nest one level: the server never queues
/// EXEC inside MULTI, and `apply` refuses a nested transaction.
pub const DECODE_NESTING_LEVELS_MAX: usize = 16;

/// Counts decoding's nesting levels (see [`DECODE_NESTING_LEVELS_MAX`]).
/// Decoding runs on one thread from start to end, so a thread-local count
/// is the depth of the value being decoded.
pub(super) mod nested {
    use std::cell::Cell;

    use serde::{Deserialize, Deserializer, de::Error};

    use super::DECODE_NESTING_LEVELS_MAX;

    thread_local! {
        static LEVELS: Cell<usize> = const { Cell::new(0) };
    }

    /// One level entered; left when dropped, on success, error or unwind.
    struct Level;

    impl Drop for Level {
        fn drop(&mut self) {
            LEVELS.with(|levels| levels.set(levels.get().saturating_sub(1)));
        }
    }

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let entered = LEVELS.with(|levels| {
            let depth = levels.get() + 1;
            levels.set(depth);
            depth
        });
        let _level = Level;
        if entered > DECODE_NESTING_LEVELS_MAX {
            return Err(D::Error::custom(format_args!(
                "values nested deeper than {DECODE_NESTING_LEVELS_MAX} levels"
            )));
        }
        T::deserialize(deserializer)
    }
}
