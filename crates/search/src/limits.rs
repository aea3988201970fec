//! Every limit of the crate, in one place, named with its unit. A limit on
//! what reaches replicated state (definitions, entries) is part of the
//! format: changing it changes which entries a value writes, so it is a
//! format change (docs/format.md), not a tuning knob.

/// Bytes of an index name.
pub const INDEX_NAME_SIZE_BYTES_MAX: usize = 256;
/// Bytes of a field's name (its alias) and of its path.
pub const FIELD_NAME_SIZE_BYTES_MAX: usize = 256;
/// Fields of one index. Field ids are `u16` in keys; 128 is RediSearch's
/// limit on TEXT fields, and plenty for the rest.
pub const FIELDS_MAX: usize = 128;
/// Key prefixes of one index (`PREFIX n ...`).
pub const PREFIXES_MAX: usize = 32;
/// Bytes of one key prefix.
pub const PREFIX_SIZE_BYTES_MAX: usize = 1024;
/// Dimensions of a vector field.
pub const VECTOR_DIM_MAX: usize = 4096;
/// Arguments of one `FT.CREATE`, after its name.
pub const CREATE_ARGS_MAX: usize = 4 * FIELDS_MAX * 8;
/// Bytes of an encoded definition (decoding refuses more).
pub const DEFINITION_SIZE_BYTES_MAX: usize = 1024 * 1024;

/// Bytes of a value parsed as a document; a larger value is skipped
/// (counted in the index's statistics), never an error for the write.
pub const DOCUMENT_SIZE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Nesting levels of a JSON document: serde_json's own recursion limit,
/// which it enforces while parsing (deeper documents are skipped).
pub const JSON_NESTING_LEVELS_MAX: usize = 128;
/// Steps of a JSON path (`$.a.b[0]` has three).
pub const JSON_PATH_STEPS_MAX: usize = 16;
/// Bytes of a term after normalisation: longer words are cut at a
/// character boundary, as RediSearch cuts at 128 bytes.
pub const TERM_SIZE_BYTES_MAX: usize = 128;
/// Bytes of a tag; longer tags are not indexed.
pub const TAG_SIZE_BYTES_MAX: usize = 256;
/// Tokens indexed per field of a document; the rest is not indexed.
pub const TOKENS_PER_FIELD_MAX: usize = 65_536;
/// Tags indexed per field of a document; the rest are not indexed.
pub const TAGS_PER_FIELD_MAX: usize = 1024;
/// Words shorter than this (in bytes) are not stemmed (RediSearch's
/// `MINSTEMLEN` default).
pub const STEM_WORD_SIZE_BYTES_MIN: usize = 4;

/// The most bytes an entry key adds to a user key: tag, index id, kind,
/// field id, a tag escaped at worst to twice its size, and its terminator.
/// Storage checks, at compile time, that its longest user key plus this
/// fits the engine's key limit.
pub const ENTRY_KEY_OVERHEAD_BYTES_MAX: usize = 1 + 4 + 1 + 2 + 2 * TAG_SIZE_BYTES_MAX + 2;

/// Bytes of a query string.
pub const QUERY_SIZE_BYTES_MAX: usize = 16 * 1024;
/// Nesting levels of a query: parentheses and negations.
pub const QUERY_NESTING_LEVELS_MAX: usize = 32;
/// Nodes of a parsed query (terms, tags, ranges, operators).
pub const QUERY_NODES_MAX: usize = 512;
/// PARAMS pairs of one query.
pub const QUERY_PARAMS_MAX: usize = 256;
/// Bytes of one PARAMS value (a vector of 4,096 floats is 16 KiB).
pub const QUERY_PARAM_SIZE_BYTES_MAX: usize = 64 * 1024;
/// `k` of a KNN query.
pub const KNN_K_MAX: usize = 10_000;
/// Terms one `prefix*` expands to (RediSearch's `MAXEXPANSIONS`).
pub const PREFIX_EXPANSIONS_MAX: usize = 200;
/// Characters a prefix needs to match anything (RediSearch's
/// `MINPREFIX`): a shorter one matches nothing, as there.
pub const PREFIX_CHARS_MIN: usize = 2;
/// Index entries one query may read (the default of
/// [`crate::SearchOptions::entries_scanned_max`]): bounds its time and memory.
pub const QUERY_ENTRIES_SCANNED_MAX: u64 = 20_000_000;

const _: () = assert!(FIELDS_MAX <= u16::MAX as usize);
const _: () = assert!(TERM_SIZE_BYTES_MAX <= TAG_SIZE_BYTES_MAX);
