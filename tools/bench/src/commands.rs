//! `--workload commands`: replay a file of pre-encoded RESP commands.
//!
//! The file is what a client would send: RESP arrays of bulk strings, one
//! after the other (binary safe, so a KNN query's FLOAT32 blob fits). Every
//! connection takes the next command from one shared cursor, wrapping at the
//! end: all connections together walk the file in order, so each command
//! runs about as often as any other whatever the connection count, and
//! `--requests` equal to the file's command count with `--warmup-s 0` sends
//! each command exactly once (a loader: FT.SEARCH corpora, HSET documents).
//!
//! Replies are only checked for being errors; what a command answers is the
//! server's business (the search benchmark checks results separately).

use std::path::Path;

/// Largest commands file: it is read whole into memory.
pub const FILE_BYTES_MAX: u64 = 16 * 1024 * 1024 * 1024;
/// Most commands in one file.
pub const COUNT_MAX: usize = 100_000_000;
/// Most arguments in one command.
pub const ARGS_MAX: usize = 1_000_000;

/// Why a commands file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {size_bytes} bytes, over the limit of {FILE_BYTES_MAX}")]
    TooLarge { path: String, size_bytes: u64 },
    #[error("byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("no command in the file")]
    Empty,
    #[error("more than {COUNT_MAX} commands")]
    TooMany,
}

/// The parsed file: the bytes as sent, and where each command lies.
#[derive(Debug)]
pub struct Commands {
    bytes: Vec<u8>,
    /// `(start, end)` of each command in `bytes`.
    spans: Vec<(usize, usize)>,
}

impl Commands {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Commands, CommandsError> {
        let read_error = |source| CommandsError::Read {
            path: path.display().to_string(),
            source,
        };
        let size_bytes = std::fs::metadata(path).map_err(read_error)?.len();
        if size_bytes > FILE_BYTES_MAX {
            return Err(CommandsError::TooLarge {
                path: path.display().to_string(),
                size_bytes,
            });
        }
        Commands::parse(std::fs::read(path).map_err(read_error)?)
    }

    /// Splits `bytes` into commands; each must be a RESP array of bulk
    /// strings, and nothing may follow the last.
    pub fn parse(bytes: Vec<u8>) -> Result<Commands, CommandsError> {
        let mut spans = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            if spans.len() >= COUNT_MAX {
                return Err(CommandsError::TooMany);
            }
            let end = command_end(&bytes, at)?;
            spans.push((at, end));
            at = end;
        }
        if spans.is_empty() {
            return Err(CommandsError::Empty);
        }
        Ok(Commands { bytes, spans })
    }

    pub fn count(&self) -> usize {
        self.spans.len()
    }

    /// Command `index` modulo the count, as encoded on the wire.
    pub fn get(&self, index: u64) -> &[u8] {
        // len() >= 1 (parse refuses an empty file), so the modulo is defined.
        let (start, end) = self.spans[(index % self.spans.len() as u64) as usize];
        &self.bytes[start..end]
    }
}

/// Where the command starting at `at` ends.
fn command_end(bytes: &[u8], at: usize) -> Result<usize, CommandsError> {
    let (count, mut at) = header(bytes, at, b'*')?;
    if count == 0 || count > ARGS_MAX {
        return Err(CommandsError::Malformed {
            offset: at,
            what: "a command has 1 to 1,000,000 arguments",
        });
    }
    for _ in 0..count {
        let (len, body) = header(bytes, at, b'$')?;
        let end = body
            .checked_add(len)
            .and_then(|e| e.checked_add(2))
            .filter(|&e| e <= bytes.len())
            .ok_or(CommandsError::Malformed {
                offset: body,
                what: "a bulk string runs past the end of the file",
            })?;
        if &bytes[end - 2..end] != b"\r\n" {
            return Err(CommandsError::Malformed {
                offset: end - 2,
                what: "a bulk string does not end with CRLF",
            });
        }
        at = end;
    }
    Ok(at)
}

/// Parses `<kind><decimal>\r\n` at `at`; returns the number and where the
/// line ends.
fn header(bytes: &[u8], at: usize, kind: u8) -> Result<(usize, usize), CommandsError> {
    let malformed = |what| CommandsError::Malformed { offset: at, what };
    if bytes.get(at) != Some(&kind) {
        return Err(malformed(if kind == b'*' {
            "expected '*' (an array: each command is a RESP array of bulk strings)"
        } else {
            "expected '$' (a bulk string)"
        }));
    }
    let mut n: usize = 0;
    let mut i = at + 1;
    // 12 digits: far above any limit, far below usize overflow.
    while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        if i - at > 12 {
            return Err(malformed("a length of more than 12 digits"));
        }
        n = n * 10 + usize::from(b - b'0');
        i += 1;
    }
    if i == at + 1 || bytes.get(i..i + 2) != Some(b"\r\n".as_slice()) {
        return Err(malformed("a length must be digits followed by CRLF"));
    }
    Ok((n, i + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use strata_protocol::resp::encode_request;

    fn encoded(commands: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for args in commands {
            encode_request(args, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn splits_commands_and_wraps_around() {
        let blob: &[u8] = &[0, 13, 10, 255, b'$'];
        let bytes = encoded(&[
            &[b"FT.SEARCH", b"idx", b"hello world"],
            &[
                b"FT.SEARCH",
                b"v",
                b"*=>[KNN 10 @vec $q]",
                b"PARAMS",
                b"2",
                b"q",
                blob,
            ],
        ]);
        let commands = Commands::parse(bytes.clone()).expect("valid");
        assert_eq!(commands.count(), 2);
        let joined = [commands.get(0), commands.get(1)].concat();
        assert_eq!(joined, bytes);
        assert_eq!(commands.get(2), commands.get(0));
        assert!(commands.get(1).ends_with(b"$5\r\n\x00\r\n\xff$\r\n"));
    }

    #[test]
    fn refuses_what_is_not_a_command_stream() {
        for (bad, why) in [
            (b"".to_vec(), "empty"),
            (b"PING\r\n".to_vec(), "inline command"),
            (b"*1\r\n$4\r\nPIN".to_vec(), "truncated bulk"),
            (b"*1\r\n$4\r\nPINGxx".to_vec(), "no CRLF after bulk"),
            (b"*0\r\n".to_vec(), "no arguments"),
            (b"*1\r\n:4\r\n".to_vec(), "not a bulk"),
            (b"*1\r\n$\r\n\r\n".to_vec(), "no digits"),
            (b"*1\r\n$99999999999999\r\n".to_vec(), "too many digits"),
            (
                [encoded(&[&[b"PING"]]), b"*".to_vec()].concat(),
                "trailing junk",
            ),
        ] {
            assert!(Commands::parse(bad).is_err(), "{why} was accepted");
        }
    }
}
