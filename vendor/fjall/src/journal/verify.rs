// STRATA PATCH: this whole file. See vendor/README.md ("Journal corruption").
//
// Read-only verification of the journal files, run before recovery opens
// (and truncates) any of them. Upstream recovery treats every decode error
// as a torn tail and truncates the file there, so one flipped byte in the
// middle of a journal silently dropped every later, acknowledged batch.
//
// The rule: a journal's tail is *torn* (a crash while the last batch was
// being written; safe to drop) only if what follows the last valid batch is
// a prefix of a batch and nothing else:
//
// * no complete batch end marker (`End` with the magic trailer) follows it.
//   The writer writes a batch front to back and the end marker last, so a
//   crash can leave part of a batch but never a complete end marker after
//   an incomplete batch: an end marker there means a complete batch was
//   damaged;
// * the incomplete batch decodes cleanly up to where the data stops: the
//   rest of the file is zeros (the journal is preallocated with zeros) or
//   there is no rest.
//
// Anything else is corruption. A sealed (not last) journal never has a torn
// tail: it was fsynced whole before the next journal was created. Batches'
// sequence numbers, which the batch checksum does not cover, are checked
// too: they increase strictly (see `SeqnoWindow`).

use super::recovery::JournalId;
use crate::file::MAGIC_BYTES;
use std::{
    fs::File,
    hash::Hasher,
    io::{BufReader, Read},
    path::{Path, PathBuf},
};

/// Chunk size for streaming values through the hasher and scanning tails.
const CHUNK_BYTES: usize = 64 * 1_024;

const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;

/// How a journal file ends.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum JournalEnd {
    /// Nothing but zeros (preallocated space) after the last valid batch.
    Clean,
    /// An incomplete last batch, cut by a crash; recovery drops it.
    TornTail,
    /// Damaged: recovery refuses to open the database.
    Corrupt {
        /// Byte offset where the damage was detected.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
}

/// The verdict on one journal file.
#[derive(Clone, Debug)]
pub struct JournalStatus {
    /// The journal file.
    pub path: PathBuf,
    /// Its number (the file name).
    pub id: JournalId,
    /// Its size on disk.
    pub file_size_bytes: u64,
    /// The end of the last valid batch before any problem: where a torn
    /// tail is cut, and where an explicit repair would cut a damaged file.
    pub valid_size_bytes: u64,
    /// Valid batches before `valid_size_bytes`.
    pub batches: u64,
    /// How the file ends.
    pub end: JournalEnd,
}

/// A damaged journal file, as returned by recovery.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct JournalCorruption {
    /// The journal file.
    pub path: PathBuf,
    /// Byte offset where the damage was detected.
    pub offset: u64,
    /// The end of the last valid batch before it.
    pub valid_size_bytes: u64,
    /// What is wrong there.
    pub reason: String,
}

impl std::fmt::Display for JournalCorruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "journal {} is corrupt at byte offset {}: {} (valid batches end at byte {})",
            self.path.display(),
            self.offset,
            self.reason,
            self.valid_size_bytes,
        )
    }
}

/// The journal files in `dir`, oldest first.
pub fn list_journals(dir: &Path) -> crate::Result<Vec<(JournalId, PathBuf)>> {
    let mut out = Vec::new();
    for dirent in std::fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(base) = name.strip_suffix(".jnl") else {
            continue;
        };
        if !dirent.file_type()?.is_file() {
            continue;
        }
        let id = base.parse::<JournalId>().map_err(|_| {
            crate::Error::JournalRecovery(crate::JournalRecoveryError::InvalidFileName)
        })?;
        out.push((id, dirent.path()));
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// Verifies every journal file in `dir` without changing anything.
pub fn verify_journals(dir: &Path) -> crate::Result<Vec<JournalStatus>> {
    let journals = list_journals(dir)?;
    let count = journals.len();
    let mut seqnos = SeqnoWindow::default();
    let mut out: Vec<JournalStatus> = Vec::with_capacity(count);
    for (i, (id, path)) in journals.into_iter().enumerate() {
        let mut status = scan_file(&path, id, i, &mut seqnos)?;
        if i + 1 < count && status.end == JournalEnd::TornTail {
            status.end = JournalEnd::Corrupt {
                offset: status.valid_size_bytes,
                reason: "incomplete batch at the end of a sealed (not the last) journal"
                    .to_string(),
            };
        }
        out.push(status);
    }
    if let Some(bad) = seqnos.bad {
        mark_seqno_anomaly(&mut out, bad);
    }
    Ok(out)
}

/// The first damaged journal in `dir`, if any. Logs a torn tail (which
/// recovery then drops) as a warning: it is a crash's trace, worth seeing.
pub fn find_corruption(dir: &Path) -> crate::Result<Option<JournalCorruption>> {
    let statuses = verify_journals(dir)?;
    for s in &statuses {
        if s.end == JournalEnd::TornTail {
            log::warn!(
                "journal {}: dropping an incomplete last batch after byte {} (a crash while it was written)",
                s.path.display(),
                s.valid_size_bytes,
            );
        }
    }
    Ok(statuses.into_iter().find_map(|s| match s.end {
        JournalEnd::Corrupt { offset, reason } => Some(JournalCorruption {
            path: s.path,
            offset,
            valid_size_bytes: s.valid_size_bytes,
            reason,
        }),
        _ => None,
    }))
}

/// A batch out of sequence-number order is corruption; unless an earlier
/// problem in its file already cut the file before it.
fn mark_seqno_anomaly(out: &mut [JournalStatus], bad: BatchAt) {
    let Some(status) = out.get_mut(bad.file_index) else {
        return;
    };
    if bad.offset >= status.valid_size_bytes {
        return;
    }
    status.valid_size_bytes = bad.offset;
    status.batches = bad.batch_index;
    status.end = JournalEnd::Corrupt {
        offset: bad.offset,
        reason: format!(
            "batch sequence numbers go backwards after this batch (number {})",
            bad.seqno
        ),
    };
}

#[derive(Clone, Copy, Debug)]
struct BatchAt {
    file_index: usize,
    batch_index: u64,
    offset: u64,
    seqno: u64,
    has_clear: bool,
}

/// The last batch seen, across files, and the first anomaly.
#[derive(Default)]
struct SeqnoWindow {
    prev: Option<BatchAt>,
    bad: Option<BatchAt>,
}

impl SeqnoWindow {
    /// Every batch takes the next sequence number under the journal lock,
    /// so they increase strictly through the journals, with one exception:
    /// after a restart the engine's counter resumes above the highest
    /// sequence number still held in a keyspace, and a clear replayed last
    /// leaves none of its own, so the batches after a clearing batch may be
    /// numbered at or below it. Any other step down is damage; it is
    /// reported at the earlier batch of the two, because either may be the
    /// damaged one (a cut there drops both).
    fn push(&mut self, next: BatchAt) {
        if let Some(prev) = self.prev {
            if !prev.has_clear && next.seqno <= prev.seqno && self.bad.is_none() {
                self.bad = Some(prev);
            }
        }
        self.prev = Some(next);
    }
}

/// Why decoding stopped.
enum Fault {
    /// The end of the file, or a read error: no more data.
    Eof,
    /// Space that was never written: a zero byte where an entry tag should
    /// be, or an end marker whose trailer is cut off (zeros).
    Unwritten,
    /// Bytes that no writer produces here.
    Invalid(&'static str),
}

impl From<std::io::Error> for Fault {
    fn from(_: std::io::Error) -> Self {
        // End of file, or a read error (which then also fails the
        // recovery read that follows): either way, the data we can trust
        // ends here.
        Self::Eof
    }
}

/// A reader that knows its position.
struct Cursor {
    inner: BufReader<File>,
    pos: u64,
    /// Reused for every value streamed through the hasher.
    scratch: Vec<u8>,
}

impl Cursor {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Fault> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, Fault> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u64(&mut self) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `len` bytes into the hasher, in bounded chunks.
    fn hash_bytes(&mut self, len: u64, hasher: &mut xxhash_rust::xxh3::Xxh3) -> Result<(), Fault> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(CHUNK_BYTES, 0);
        let mut left = len;
        let mut result = Ok(());
        while left > 0 {
            let n = usize::try_from(left)
                .unwrap_or(CHUNK_BYTES)
                .min(CHUNK_BYTES);
            let Some(chunk) = buf.get_mut(..n) else {
                result = Err(Fault::Eof);
                break;
            };
            if let Err(e) = self.inner.read_exact(chunk) {
                result = Err(e.into());
                break;
            }
            self.pos += n as u64;
            hasher.update(chunk);
            left -= n as u64;
        }
        self.scratch = buf;
        result
    }
}

/// One journal entry, as far as verification needs it.
enum Raw {
    Start {
        item_count: u32,
        seqno: u64,
    },
    /// An item; its bytes went into the hasher.
    Item,
    /// A keyspace clear marker; its bytes went into the hasher.
    Clear,
    End {
        checksum: u64,
    },
}

fn read_entry(c: &mut Cursor, hasher: &mut xxhash_rust::xxh3::Xxh3) -> Result<Raw, Fault> {
    match c.u8()? {
        0 => Err(Fault::Unwritten),
        TAG_START => {
            let mut b = [0u8; 4];
            c.read_exact(&mut b)?;
            let seqno = c.u64()?;
            Ok(Raw::Start {
                item_count: u32::from_le_bytes(b),
                seqno,
            })
        }
        TAG_ITEM => read_item(c, hasher).map(|()| Raw::Item),
        TAG_CLEAR => {
            let mut b = [0u8; 9];
            b[0] = TAG_CLEAR;
            c.read_exact(&mut b[1..])?;
            hasher.update(&b);
            Ok(Raw::Clear)
        }
        TAG_END => read_end(c),
        _ => Err(Fault::Invalid("invalid entry tag")),
    }
}

/// An item: tag, value type, compression, keyspace id (8), key length (2),
/// value length (4), stored value length (4), key, stored value. All of it
/// is covered by the batch checksum.
fn read_item(c: &mut Cursor, hasher: &mut xxhash_rust::xxh3::Xxh3) -> Result<(), Fault> {
    let mut head = [0u8; 21];
    head[0] = TAG_ITEM;
    c.read_exact(&mut head[1..])?;
    // 0 value, 1 tombstone, 2 weak tombstone. An indirection (4) never goes
    // through the journal (recovery would hit `unreachable!`).
    if !matches!(head[1], 0..=2) {
        return Err(Fault::Invalid("invalid value type in item"));
    }
    if head[2] > 1 {
        return Err(Fault::Invalid("invalid compression type in item"));
    }
    let key_len = u16::from_le_bytes([head[11], head[12]]);
    let stored_len = u32::from_le_bytes([head[17], head[18], head[19], head[20]]);
    hasher.update(&head);
    c.hash_bytes(u64::from(key_len) + u64::from(stored_len), hasher)
}

/// The end marker: tag, checksum (8), magic trailer. A trailer that is a
/// prefix of the magic followed by zeros is an end marker cut by a crash.
fn read_end(c: &mut Cursor) -> Result<Raw, Fault> {
    let checksum = c.u64()?;
    let mut magic = [0u8; 4];
    c.read_exact(&mut magic)?;
    if magic == MAGIC_BYTES {
        return Ok(Raw::End { checksum });
    }
    let written = magic.iter().take_while(|b| **b != 0).count();
    let is_cut = magic.get(..written) == MAGIC_BYTES.get(..written)
        && magic.iter().skip(written).all(|b| *b == 0);
    if is_cut {
        Err(Fault::Unwritten)
    } else {
        Err(Fault::Invalid("invalid batch end marker"))
    }
}

/// A valid batch.
#[derive(Clone, Copy)]
struct BatchInfo {
    seqno: u64,
    has_clear: bool,
}

/// Why a batch could not be read, and whether any of it was there.
struct Stop {
    fault: Fault,
    in_batch: bool,
}

/// Reads one batch.
fn read_batch(c: &mut Cursor) -> Result<BatchInfo, Stop> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let start_pos = c.pos;
    let stop = |fault| Stop {
        fault,
        in_batch: true,
    };
    let (item_count, seqno) = match read_entry(c, &mut hasher) {
        Ok(Raw::Start { item_count, seqno }) => (item_count, seqno),
        Ok(_) => {
            return Err(stop(Fault::Invalid(
                "batch does not begin with a start marker",
            )))
        }
        Err(fault) => {
            // Nothing of a next batch: end of file or unwritten space here.
            let in_batch = c.pos > start_pos + 1;
            return Err(Stop { fault, in_batch });
        }
    };
    let mut has_clear = false;
    for _ in 0..item_count {
        match read_entry(c, &mut hasher) {
            Ok(Raw::Item) => {}
            Ok(Raw::Clear) => has_clear = true,
            Ok(Raw::Start { .. }) => {
                return Err(stop(Fault::Invalid("start marker inside a batch")))
            }
            Ok(Raw::End { .. }) => {
                return Err(stop(Fault::Invalid("batch has fewer items than announced")))
            }
            Err(f) => return Err(stop(f)),
        }
    }
    match read_entry(c, &mut hasher) {
        Ok(Raw::End { checksum }) if checksum == hasher.finish() => {
            Ok(BatchInfo { seqno, has_clear })
        }
        Ok(Raw::End { .. }) => Err(stop(Fault::Invalid("batch checksum mismatch"))),
        Ok(_) => Err(stop(Fault::Invalid("batch has more items than announced"))),
        Err(f) => Err(stop(f)),
    }
}

fn scan_file(
    path: &Path,
    id: JournalId,
    file_index: usize,
    seqnos: &mut SeqnoWindow,
) -> crate::Result<JournalStatus> {
    let file = File::open(path)?;
    let file_size_bytes = file.metadata()?.len();
    let mut c = Cursor {
        inner: BufReader::with_capacity(CHUNK_BYTES, file),
        pos: 0,
        scratch: Vec::new(),
    };
    let mut batches = 0u64;
    let mut valid = 0u64;
    let stop = loop {
        match read_batch(&mut c) {
            Ok(info) => {
                seqnos.push(BatchAt {
                    file_index,
                    batch_index: batches,
                    offset: valid,
                    seqno: info.seqno,
                    has_clear: info.has_clear,
                });
                batches += 1;
                valid = c.pos;
            }
            Err(stop) => break stop,
        }
    };
    let end = classify_tail(path, valid, c.pos, stop)?;
    Ok(JournalStatus {
        path: path.to_path_buf(),
        id,
        file_size_bytes,
        valid_size_bytes: valid,
        batches,
        end,
    })
}

/// Decides what the bytes after the last valid batch (`valid`) are.
/// `stopped_at`: the read position when decoding stopped.
fn classify_tail(
    path: &Path,
    valid: u64,
    stopped_at: u64,
    stop: Stop,
) -> crate::Result<JournalEnd> {
    let corrupt = |reason: String| JournalEnd::Corrupt {
        offset: valid,
        reason,
    };
    let tail = scan_region(path, valid)?;
    if let Some(at) = tail.magic_at {
        return Ok(corrupt(format!(
            "a batch does not decode, but a complete batch end follows it (at byte {at})"
        )));
    }
    match stop.fault {
        Fault::Invalid(reason) => return Ok(corrupt(reason.to_string())),
        Fault::Eof => {}
        Fault::Unwritten => {
            // A crash leaves unwritten space, never bytes after a gap.
            if tail.last_nonzero.is_some_and(|last| last >= stopped_at) {
                return Ok(corrupt(
                    if stop.in_batch {
                        "a batch does not decode, and non-zero bytes follow it"
                    } else {
                        "non-zero bytes after the last batch"
                    }
                    .to_string(),
                ));
            }
        }
    }
    Ok(if stop.in_batch {
        JournalEnd::TornTail
    } else {
        JournalEnd::Clean
    })
}

struct Region {
    /// Offset of the first complete magic trailer at or after the start.
    magic_at: Option<u64>,
    /// Offset of the last non-zero byte at or after the start.
    last_nonzero: Option<u64>,
}

/// Scans `[from, EOF)` of `path` in bounded chunks.
fn scan_region(path: &Path, from: u64) -> crate::Result<Region> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut region = Region {
        magic_at: None,
        last_nonzero: None,
    };
    let keep = MAGIC_BYTES.len() - 1;
    // The last `keep` bytes of the previous chunk, so that a trailer that
    // straddles two chunks is found.
    let mut buf = vec![0u8; keep + CHUNK_BYTES];
    let mut carried = 0usize;
    let mut pos = from;
    loop {
        let n = file.read(buf.get_mut(carried..).unwrap_or_default())?;
        if n == 0 {
            return Ok(region);
        }
        let window = buf.get(..carried + n).unwrap_or_default();
        let window_start = pos - carried as u64;
        if region.magic_at.is_none() {
            region.magic_at = window
                .windows(MAGIC_BYTES.len())
                .position(|w| w == MAGIC_BYTES)
                .map(|i| window_start + i as u64);
        }
        if let Some(i) = window.iter().rposition(|b| *b != 0) {
            region.last_nonzero = Some(window_start + i as u64);
        }
        pos += n as u64;
        let next_carried = keep.min(carried + n);
        buf.copy_within(carried + n - next_carried..carried + n, 0);
        carried = next_carried;
    }
}
