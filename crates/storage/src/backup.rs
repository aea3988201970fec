//! Backup files: every live record of one consistent state, streamed.
//!
//! A backup is written by [`BackupStream`] from a [`Snapshot`] (the server
//! hands its chunks to a client, `BACKUP NEXT`), and read back by
//! [`BackupReader`] (`strata backup status`, `restore`, and the client
//! while it saves). Neither side ever holds the whole file: the stream
//! pulls records from the engine as chunks are asked for, and the reader
//! yields one record at a time. Layout (docs/format.md, "Backup files"):
//!
//! ```text
//! "STRATABK" | u32 format version | u32 header_len | header (postcard BackupHeader)
//! { u32 key_len | user key | u32 record_len | record }*      keys strictly ascending
//! u32 0xFFFF_FFFF | u64 entry_count | u64 xxh3-64 (of every byte before it)
//! ```
//!
//! What a backup holds is the records only, as stored (value, version,
//! expiry), not the engine's derived keys (expiry index, counters) nor a
//! cluster's applied mark and dedupe records: so one file restores into a
//! single node or seeds a cluster alike, and the restore rebuilds the
//! rest (`restore.rs`). Records already expired when the backup was taken
//! are left out: a read at that moment would not have seen them.

use std::collections::VecDeque;
use std::io::{self, Read};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::{KEY_SIZE_BYTES_LIMIT, VALUE_SIZE_BYTES_LIMIT};
use crate::error::{Result, StorageError};
use crate::record::Record;
use crate::snapshot::Snapshot;

pub const BACKUP_MAGIC: &[u8; 8] = b"STRATABK";
/// The format this build writes and reads; any other is refused.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// The header is a few integers and a short string: anything larger is
/// damage, refused before allocating.
const HEADER_SIZE_BYTES_MAX: usize = 64 * 1024;
/// Where a key length would be, after the last entry. No key is this long.
const END_MARKER: u32 = u32::MAX;
/// A record is a value and at most 17 bytes of header (`record.rs`).
const RECORD_SIZE_BYTES_MAX: usize = VALUE_SIZE_BYTES_LIMIT + 17;
/// Values shorter than this are copied into the stream's buffer; longer
/// ones are queued as they are (no copy until a chunk is cut from them).
const COPY_VALUE_BYTES_MAX: usize = 16 * 1024;
/// A reader grows a buffer for a long field in steps of at most this, so
/// a damaged length cannot make it allocate before the bytes arrive.
const READ_STEP_BYTES: usize = 1024 * 1024;

/// Where and when a backup was taken. Informational except `taken_at_ms`
/// and `version`, which the reader checks every record against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The server's clock when the backup began, Unix ms. Every record in
    /// the file is live at this time.
    pub taken_at_ms: u64,
    /// The version of the state copied: on a single node the number of
    /// the last commit group, in a cluster the index of the last log entry
    /// applied. No record in the file has a higher version.
    pub version: u64,
    /// The cluster node it was taken from; 0 for a single node.
    pub node_id: u64,
    /// The build that wrote it, e.g. `strata 0.1.0`.
    pub server: String,
}

/// What a complete read of a backup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupSummary {
    pub keys: u64,
    pub expiring_keys: u64,
    /// The values' bytes (not keys or framing).
    pub value_bytes: u64,
    /// The highest record version in the file (at most the header's).
    pub version_max: u64,
    /// Bytes read so far; the file's size once the read is complete.
    pub file_bytes: u64,
}

/// Why a backup file was refused. Every variant but `Io` and `Target`
/// means the file is not a complete, intact backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Strata backup file (it does not start with STRATABK)")]
    NotABackup,
    #[error(
        "backup format version {found} is not supported (this build reads version {BACKUP_FORMAT_VERSION})"
    )]
    Version { found: u32 },
    #[error("the backup is truncated: it ends at byte {offset}, inside {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("the backup is damaged at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error(
        "the backup is damaged: its checksum does not match its contents (stored {stored:016x}, computed {computed:016x})"
    )]
    Checksum { stored: u64, computed: u64 },
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// The restore's target directory cannot be used; nothing was written.
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BackupError {
    /// Whether the file itself is at fault (not the disk or the target).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            BackupError::NotABackup
                | BackupError::Version { .. }
                | BackupError::Truncated { .. }
                | BackupError::Corrupt { .. }
                | BackupError::Checksum { .. }
        )
    }
}

impl From<io::Error> for BackupError {
    fn from(e: io::Error) -> Self {
        BackupError::Io(e)
    }
}

type RawRecords = Box<dyn Iterator<Item = Result<(Bytes, Bytes)>> + Send>;

/// A backup file, produced a chunk at a time from one snapshot. Holds the
/// snapshot (and so the engine's old versions) until dropped.
pub struct BackupStream {
    header: BackupHeader,
    /// `None` once the trailer is queued.
    records: Option<RawRecords>,
    /// Encoded bytes not yet handed out: whole segments, oldest first,
    /// then `small`, where short pieces are gathered.
    queued: VecDeque<Bytes>,
    small: BytesMut,
    queued_bytes: usize,
    hasher: Box<Xxh3>,
    count: u64,
    /// Bytes handed out so far.
    offset: u64,
    previous_key: Option<Bytes>,
}

impl BackupStream {
    /// Starts a backup of `snapshot`, whose state has `header.version`
    /// (see [`crate::Store::snapshot_with_version`]).
    pub fn new(snapshot: &Snapshot, header: BackupHeader) -> Result<BackupStream> {
        let raw_header = postcard::to_allocvec(&header)
            .map_err(|e| StorageError::Config(format!("backup header: {e}")))?;
        let mut stream = BackupStream {
            header,
            records: Some(Box::new(snapshot.records_raw())),
            queued: VecDeque::new(),
            small: BytesMut::with_capacity(64 * 1024),
            queued_bytes: 0,
            hasher: Box::new(Xxh3::new()),
            count: 0,
            offset: 0,
            previous_key: None,
        };
        stream.push_small(BACKUP_MAGIC);
        stream.push_small(&BACKUP_FORMAT_VERSION.to_le_bytes());
        stream.push_small(&(raw_header.len() as u32).to_le_bytes());
        stream.push_small(&raw_header);
        Ok(stream)
    }

    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// Bytes handed out so far: the offset of the next chunk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The next 1 to `size_bytes_max` bytes of the file, or an empty chunk
    /// once all of it was handed out. Reads from the engine (possibly from
    /// disk): call it where blocking is allowed. An error ends the backup.
    pub fn next_chunk(&mut self, size_bytes_max: usize) -> Result<Bytes> {
        debug_assert!(size_bytes_max > 0);
        self.fill(size_bytes_max)?;
        self.seal_small();
        let want = size_bytes_max.min(self.queued_bytes);
        let mut out = BytesMut::with_capacity(want);
        while out.len() < want {
            let Some(front) = self.queued.front_mut() else {
                break;
            };
            let take = front.len().min(want - out.len());
            out.put_slice(&front.split_to(take));
            if front.is_empty() {
                self.queued.pop_front();
            }
        }
        debug_assert_eq!(out.len(), want);
        self.queued_bytes -= want;
        self.offset += want as u64;
        Ok(out.freeze())
    }

    /// Encodes records until at least `want` bytes are queued or the
    /// trailer is.
    fn fill(&mut self, want: usize) -> Result<()> {
        while self.queued_bytes < want {
            let Some(records) = self.records.as_mut() else {
                return Ok(());
            };
            match records.next() {
                Some(item) => {
                    let (key, raw) = item?;
                    self.push_record(key, raw)?;
                }
                None => {
                    self.records = None;
                    self.push_small(&END_MARKER.to_le_bytes());
                    self.push_small(&self.count.to_le_bytes());
                    // The checksum is the one field it does not cover.
                    let digest = self.hasher.digest();
                    self.small.put_slice(&digest.to_le_bytes());
                    self.queued_bytes += 8;
                }
            }
        }
        Ok(())
    }

    /// One stored record, unless it had expired when the backup was taken.
    /// Checked as the reader will check it: a record the reader would
    /// refuse fails the backup here, where the damage is.
    fn push_record(&mut self, key: Bytes, raw: Bytes) -> Result<()> {
        let record = Record::decode(raw.clone()).map_err(|reason| StorageError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason,
        })?;
        if !record.is_live_at(self.header.taken_at_ms) {
            return Ok(());
        }
        let refuse = |reason| StorageError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason,
        };
        if record.version > self.header.version {
            return Err(refuse("record newer than the state it was read from"));
        }
        if key.len() > KEY_SIZE_BYTES_LIMIT || raw.len() > RECORD_SIZE_BYTES_MAX {
            return Err(refuse("record too large for a backup"));
        }
        debug_assert!(self.previous_key.as_ref().is_none_or(|p| *p < key));
        self.push_small(&(key.len() as u32).to_le_bytes());
        self.push_small(&key);
        self.push_small(&(raw.len() as u32).to_le_bytes());
        if raw.len() <= COPY_VALUE_BYTES_MAX {
            self.push_small(&raw);
        } else {
            self.hasher.update(&raw);
            self.seal_small();
            self.queued_bytes += raw.len();
            self.queued.push_back(raw);
        }
        self.previous_key = Some(key);
        self.count += 1;
        Ok(())
    }

    fn push_small(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.small.put_slice(bytes);
        self.queued_bytes += bytes.len();
    }

    /// Moves the gathered short pieces into the queue, behind what is
    /// there, so that order is kept.
    fn seal_small(&mut self) {
        if !self.small.is_empty() {
            let piece = self.small.split().freeze();
            self.queued.push_back(piece);
        }
    }
}

/// One record of a backup file.
pub struct BackupRecord {
    pub key: Bytes,
    /// The record as stored (restored verbatim).
    pub raw: Bytes,
    pub record: Record,
}

/// Reads and checks a backup file from any byte source, one record at a
/// time. The file is known intact only once [`BackupReader::next_record`]
/// has returned `None`: the checksum is at the end.
pub struct BackupReader<R: Read> {
    r: R,
    hasher: Box<Xxh3>,
    header: BackupHeader,
    previous_key: Option<Bytes>,
    summary: BackupSummary,
    done: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the header.
    pub fn open(r: R) -> std::result::Result<BackupReader<R>, BackupError> {
        let mut reader = BackupReader {
            r,
            hasher: Box::new(Xxh3::new()),
            header: BackupHeader {
                taken_at_ms: 0,
                version: 0,
                node_id: 0,
                server: String::new(),
            },
            previous_key: None,
            summary: BackupSummary::default(),
            done: false,
        };
        let magic = reader.read_array::<8>("the magic")?;
        if &magic != BACKUP_MAGIC {
            return Err(BackupError::NotABackup);
        }
        let version = u32::from_le_bytes(reader.read_array::<4>("the format version")?);
        if version != BACKUP_FORMAT_VERSION {
            return Err(BackupError::Version { found: version });
        }
        let at = reader.summary.file_bytes;
        let len = u32::from_le_bytes(reader.read_array::<4>("the header length")?) as usize;
        if len > HEADER_SIZE_BYTES_MAX {
            return Err(corrupt(at, format!("a header of {len} bytes is too long")));
        }
        let at = reader.summary.file_bytes;
        let raw = reader.read_vec(len, "the header")?;
        reader.header = match postcard::take_from_bytes::<BackupHeader>(&raw) {
            Ok((header, [])) => header,
            Ok(_) => return Err(corrupt(at, "bytes left over after the header".into())),
            Err(e) => return Err(corrupt(at, format!("the header does not decode: {e}"))),
        };
        Ok(reader)
    }

    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// What was read so far; the whole file's figures once `next_record`
    /// returned `None`.
    pub fn summary(&self) -> &BackupSummary {
        &self.summary
    }

    /// The next record, checked; `None` after the trailer, once the count,
    /// the checksum and the end of the file are checked too.
    pub fn next_record(&mut self) -> std::result::Result<Option<BackupRecord>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let at = self.summary.file_bytes;
        let key_len = u32::from_le_bytes(self.read_array::<4>("a key length")?);
        if key_len == END_MARKER {
            self.read_trailer()?;
            self.done = true;
            return Ok(None);
        }
        let key_len = key_len as usize;
        if key_len > KEY_SIZE_BYTES_LIMIT {
            return Err(corrupt(at, format!("a key of {key_len} bytes is too long")));
        }
        let key = Bytes::from(self.read_vec(key_len, "a key")?);
        if self.previous_key.as_ref().is_some_and(|p| *p >= key) {
            return Err(corrupt(at, "keys out of order".into()));
        }
        let at = self.summary.file_bytes;
        let raw_len = u32::from_le_bytes(self.read_array::<4>("a record length")?) as usize;
        if raw_len > RECORD_SIZE_BYTES_MAX {
            return Err(corrupt(
                at,
                format!("a record of {raw_len} bytes is too long"),
            ));
        }
        let at = self.summary.file_bytes;
        let raw = Bytes::from(self.read_vec(raw_len, "a record")?);
        let record = self.check_record(at, &raw)?;
        self.summary.keys += 1;
        self.summary.expiring_keys += u64::from(record.has_expiry());
        self.summary.value_bytes += record.value.len() as u64;
        self.summary.version_max = self.summary.version_max.max(record.version);
        self.previous_key = Some(key.clone());
        Ok(Some(BackupRecord { key, raw, record }))
    }

    /// Reads every remaining record: the whole file is checked.
    pub fn verify_to_end(&mut self) -> std::result::Result<(), BackupError> {
        while self.next_record()?.is_some() {}
        Ok(())
    }

    /// A record must decode and agree with the header: no newer than the
    /// state it came from, and live when the backup was taken.
    fn check_record(&self, at: u64, raw: &Bytes) -> std::result::Result<Record, BackupError> {
        let record = Record::decode(raw.clone())
            .map_err(|reason| corrupt(at, format!("a record does not decode: {reason}")))?;
        if record.version > self.header.version {
            return Err(corrupt(
                at,
                format!(
                    "a record of version {} in a backup of version {}",
                    record.version, self.header.version
                ),
            ));
        }
        if !record.is_live_at(self.header.taken_at_ms) {
            return Err(corrupt(
                at,
                "a record that had expired when the backup was taken".into(),
            ));
        }
        Ok(record)
    }

    /// After the end marker: the count, the checksum, and nothing more.
    fn read_trailer(&mut self) -> std::result::Result<(), BackupError> {
        let at = self.summary.file_bytes;
        let count = u64::from_le_bytes(self.read_array::<8>("the entry count")?);
        if count != self.summary.keys {
            return Err(corrupt(
                at,
                format!(
                    "the trailer counts {count} records but the file holds {}",
                    self.summary.keys
                ),
            ));
        }
        let computed = self.hasher.digest();
        let mut stored = [0u8; 8];
        self.read_exact_raw(&mut stored, "the checksum")?;
        let stored = u64::from_le_bytes(stored);
        if stored != computed {
            return Err(BackupError::Checksum { stored, computed });
        }
        let mut after = [0u8; 1];
        let at = self.summary.file_bytes;
        if read_full(&mut self.r, &mut after)? != 0 {
            return Err(corrupt(at, "bytes after the end of the backup".into()));
        }
        Ok(())
    }

    fn read_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> std::result::Result<[u8; N], BackupError> {
        let mut buf = [0u8; N];
        self.read_exact_raw(&mut buf, what)?;
        self.hasher.update(&buf);
        Ok(buf)
    }

    /// Reads exactly `buf.len()` bytes (not hashed).
    fn read_exact_raw(
        &mut self,
        buf: &mut [u8],
        what: &'static str,
    ) -> std::result::Result<(), BackupError> {
        let got = read_full(&mut self.r, buf)?;
        self.summary.file_bytes += got as u64;
        if got < buf.len() {
            return Err(BackupError::Truncated {
                offset: self.summary.file_bytes,
                what,
            });
        }
        Ok(())
    }

    /// Reads `len` bytes, hashed, growing the buffer only as bytes arrive.
    fn read_vec(
        &mut self,
        len: usize,
        what: &'static str,
    ) -> std::result::Result<Vec<u8>, BackupError> {
        let mut out = Vec::with_capacity(len.min(READ_STEP_BYTES));
        (&mut self.r).take(len as u64).read_to_end(&mut out)?;
        self.summary.file_bytes += out.len() as u64;
        if out.len() < len {
            return Err(BackupError::Truncated {
                offset: self.summary.file_bytes,
                what,
            });
        }
        self.hasher.update(&out);
        Ok(out)
    }
}

fn corrupt(offset: u64, reason: String) -> BackupError {
    BackupError::Corrupt { offset, reason }
}

/// Reads until `buf` is full or the source ends; returns how much it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
