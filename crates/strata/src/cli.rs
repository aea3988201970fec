//! Client subcommands of the `strata` binary (`strata put k v`, ...).
//!
//! Each command opens one RESP connection, sends one request and prints the
//! result. Exit codes: 0 success, 1 not found (`get`, `delete`, `exists`),
//! 2 any error (bad arguments, connection failure, server error reply).

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use anyhow::{Context, bail};
use strata_client::{Client, ClientOptions};
use strata_protocol::text;

/// Bound on establishing the connection.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Bound on one request/reply exchange (a large `range` or `keys` reply
/// included).
const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Client commands; they talk RESP to the server at `--addr`.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Store a value (SET). Key and value are taken literally.
    Put {
        /// Key (non-empty).
        key: OsString,
        /// Value (may be empty).
        value: OsString,
    },
    /// Print a value, raw bytes followed by a newline (GET). Exit 1 if the
    /// key does not exist.
    #[command(alias = "read")]
    Get {
        /// Key.
        key: OsString,
    },
    /// Delete a key (DEL). Exit 1 if it did not exist.
    Delete {
        /// Key.
        key: OsString,
    },
    /// Store several pairs atomically (MSET). Lists are comma-separated;
    /// text-protocol escapes apply to each item (`\,` for a comma, `\\`,
    /// `\s`, `\xHH`, ...).
    Batchput {
        /// Keys: `k1,k2,...`.
        keys: OsString,
        /// Values: `v1,v2,...`, as many as keys.
        values: OsString,
    },
    /// Print `key: value` lines for keys from START to END in key order
    /// (RANGE), escaped like the text protocol.
    #[command(alias = "readrange")]
    Range {
        /// First key of the range.
        start: OsString,
        /// Last key of the range.
        end: OsString,
        /// Return at most this many pairs.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Print `true` (exit 0) or `false` (exit 1) (EXISTS).
    Exists {
        /// Key.
        key: OsString,
    },
    /// Print matching keys, one escaped key per line (KEYS).
    Keys {
        /// Glob-style pattern; all keys by default.
        pattern: Option<OsString>,
    },
    /// Print the server's statistics (INFO).
    Stats,
    /// Check that the server answers (PING).
    Ping,
}

/// What a successful command found, for the exit code.
enum Outcome {
    Done,
    NotFound,
}

/// Runs one client command against `addr` and maps the result to an exit
/// code, printing errors as `error: ...` on stderr.
pub fn run(addr: &str, command: ClientCommand) -> ExitCode {
    match execute(addr, command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(err) => {
            // `strata keys | head` closes our stdout early; that is the
            // reader's choice, not a failure worth reporting.
            let broken_pipe = err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(addr: &str, command: ClientCommand) -> anyhow::Result<Outcome> {
    // Validate arguments before connecting, so usage errors do not depend on
    // the server being up.
    let batch = match &command {
        ClientCommand::Batchput { keys, values } => Some(parse_batch(keys, values)?),
        ClientCommand::Put { key, .. } if key.is_empty() => bail!("the key must not be empty"),
        _ => None,
    };

    let mut client = Client::connect_with(
        addr,
        ClientOptions {
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            io_timeout_ms: REQUEST_TIMEOUT_MS,
            ..ClientOptions::default()
        },
    )?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());

    let outcome = match command {
        ClientCommand::Put { key, value } => {
            client.set(key.as_bytes(), value.as_bytes())?;
            writeln!(out, "OK")?;
            Outcome::Done
        }
        ClientCommand::Get { key } => match client.get(key.as_bytes())? {
            Some(value) => {
                out.write_all(&value)?;
                out.write_all(b"\n")?;
                Outcome::Done
            }
            None => not_found(&key),
        },
        ClientCommand::Delete { key } => {
            if client.del(key.as_bytes())? > 0 {
                writeln!(out, "OK")?;
                Outcome::Done
            } else {
                not_found(&key)
            }
        }
        ClientCommand::Batchput { .. } => {
            let pairs = batch.unwrap_or_default();
            client.mset(&pairs)?;
            writeln!(out, "OK")?;
            Outcome::Done
        }
        ClientCommand::Range { start, end, limit } => {
            let pairs = client.range(start.as_bytes(), end.as_bytes(), limit)?;
            let mut line = Vec::new();
            for (key, value) in pairs {
                line.clear();
                text::escape_key(&key, &mut line);
                line.extend_from_slice(b": ");
                text::escape_value(&value, &mut line);
                line.push(b'\n');
                out.write_all(&line)?;
            }
            Outcome::Done
        }
        ClientCommand::Exists { key } => {
            if client.exists(key.as_bytes())? {
                writeln!(out, "true")?;
                Outcome::Done
            } else {
                writeln!(out, "false")?;
                Outcome::NotFound
            }
        }
        ClientCommand::Keys { pattern } => {
            let pattern = pattern.unwrap_or_else(|| OsString::from("*"));
            let mut line = Vec::new();
            for key in client.keys(pattern.as_bytes())? {
                line.clear();
                text::escape_key(&key, &mut line);
                line.push(b'\n');
                out.write_all(&line)?;
            }
            Outcome::Done
        }
        ClientCommand::Stats => {
            let info = client.info(None)?;
            // INFO uses CRLF line endings; print native ones.
            let info = info.replace("\r\n", "\n");
            out.write_all(info.as_bytes())?;
            if !info.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            Outcome::Done
        }
        ClientCommand::Ping => {
            client.ping()?;
            writeln!(out, "PONG")?;
            Outcome::Done
        }
    };
    out.flush()?;
    Ok(outcome)
}

/// Reports a missing key on stderr; stdout stays empty so scripts can tell
/// "empty value" from "no value".
fn not_found(key: &OsString) -> Outcome {
    let mut shown = Vec::new();
    text::escape_key(key.as_bytes(), &mut shown);
    eprintln!("not found: {}", String::from_utf8_lossy(&shown));
    Outcome::NotFound
}

/// Splits and unescapes the `batchput` lists; errors on count mismatch or
/// an empty key.
fn parse_batch(keys: &OsString, values: &OsString) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let unescape_all = |list: &OsString, what: &str| -> anyhow::Result<Vec<Vec<u8>>> {
        text::split_list(list.as_bytes())
            .map(|item| text::unescape(item).with_context(|| format!("in the {what} list")))
            .collect()
    };
    let keys = unescape_all(keys, "key")?;
    let values = unescape_all(values, "value")?;
    if keys.len() != values.len() {
        bail!(
            "batchput got {} keys but {} values",
            keys.len(),
            values.len()
        );
    }
    if keys.iter().any(Vec::is_empty) {
        bail!("keys must not be empty");
    }
    Ok(keys.into_iter().zip(values).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn batch_lists() {
        let pairs = parse_batch(&os("a,b\\,c,d\\x00"), &os("1,two words,\\n")).unwrap();
        assert_eq!(
            pairs,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b,c".to_vec(), b"two words".to_vec()),
                (b"d\0".to_vec(), b"\n".to_vec()),
            ]
        );
        let err = parse_batch(&os("a,b"), &os("1,2,3")).unwrap_err();
        assert_eq!(err.to_string(), "batchput got 2 keys but 3 values");
        assert!(parse_batch(&os("a,,b"), &os("1,2,3")).is_err());
        assert!(parse_batch(&os("a\\q"), &os("1")).is_err());
    }

    #[test]
    fn usage_errors_exit_2_without_connecting() {
        // Port 9 on loopback is never contacted: validation fails first.
        let code = run(
            "127.0.0.1:9",
            ClientCommand::Batchput {
                keys: os("a,b"),
                values: os("1"),
            },
        );
        assert_eq!(code, ExitCode::from(2));
    }
}
