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
use strata_client::resp::Reply;
use strata_client::{Client, ClientOptions};
use strata_protocol::text;

/// Bound on establishing the connection.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Bound on one request/reply exchange (a large `range` or `keys` reply
/// included).
const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Bound on a membership change: the reply comes when the change is
/// committed, and `add-node` first waits for the new node to catch up
/// (possibly through a snapshot).
const MEMBERSHIP_TIMEOUT_MS: u64 = 300_000;

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
    /// Search an index (SEARCH): `value` (exact tag), `text` (BM25) or
    /// `semantic` (nearest by meaning). Prints `<score>  <key>: <value>`
    /// lines, best first (or `--json`); exit 1 if nothing matched.
    Search(crate::search_cli::SearchArgs),
    /// Raft cluster status and membership (CLUSTER ...).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// `strata cluster ...`: status and membership of a Raft cluster. Any node
/// answers (membership changes are forwarded to the leader). Exit codes:
/// 0 success, 1 `leader` when no leader is known, 2 any error (including
/// `-CLUSTERDOWN` / `-TRYAGAIN` replies).
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print the node's view of the cluster, with per-follower replication
    /// lag on the leader (CLUSTER STATUS).
    Status,
    /// Print the node's Raft state as `key:value` lines (CLUSTER INFO).
    Info,
    /// Print one line per member: `<id> <peer_addr> <client_addr|->
    /// <voter|learner> <role>` (CLUSTER MEMBERS; CLUSTER NODES is the
    /// Redis Cluster format, for cluster-aware clients).
    #[command(alias = "members")]
    Nodes,
    /// Print `<id> <peer_addr> <client_addr>` of the leader (CLUSTER
    /// LEADER). Exit 1 if no leader is known.
    Leader,
    /// Add a non-voting member that replicates the log (CLUSTER
    /// ADDLEARNER).
    AddLearner {
        /// Node id (>= 1).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// The node's peer address (its --peer-listen), HOST:PORT.
        peer_addr: String,
    },
    /// Add a voting member: as a learner first, a voter once it has caught
    /// up (CLUSTER ADDNODE).
    AddNode {
        /// Node id (>= 1).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// The node's peer address (its --peer-listen), HOST:PORT.
        peer_addr: String,
    },
    /// Turn a learner into a voter (CLUSTER PROMOTE).
    Promote {
        /// Node id of a learner.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Remove a member, voter or learner (CLUSTER REMOVENODE).
    RemoveNode {
        /// Node id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// If the node at --addr leads, hand leadership to the most up-to-date
    /// voter and wait until it leads; on any other node, nothing to do
    /// (CLUSTER STEPDOWN). Before stopping a node for maintenance.
    StepDown,
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
    let batch = validate(&command)?;

    let mut client = connect(addr, &command)?;
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
        ClientCommand::Delete { key } if client.del(key.as_bytes())? > 0 => {
            writeln!(out, "OK")?;
            Outcome::Done
        }
        ClientCommand::Delete { key } => not_found(&key),
        ClientCommand::Batchput { .. } => {
            let pairs = batch.unwrap_or_default();
            client.mset(&pairs)?;
            writeln!(out, "OK")?;
            Outcome::Done
        }
        ClientCommand::Range { start, end, limit } => {
            let pairs = client.range(start.as_bytes(), end.as_bytes(), limit)?;
            print_pairs(&pairs, &mut out)?;
            Outcome::Done
        }
        ClientCommand::Exists { key } => {
            let exists = client.exists(key.as_bytes())?;
            writeln!(out, "{exists}")?;
            if exists {
                Outcome::Done
            } else {
                Outcome::NotFound
            }
        }
        ClientCommand::Keys { pattern } => {
            let pattern = pattern.unwrap_or_else(|| OsString::from("*"));
            print_keys(&client.keys(pattern.as_bytes())?, &mut out)?;
            Outcome::Done
        }
        ClientCommand::Stats => {
            // INFO uses CRLF line endings; print native ones.
            let info = client.info(None)?.replace("\r\n", "\n");
            writeln!(out, "{}", info.trim_end_matches('\n'))?;
            Outcome::Done
        }
        ClientCommand::Ping => {
            client.ping()?;
            writeln!(out, "PONG")?;
            Outcome::Done
        }
        ClientCommand::Search(args) => {
            if crate::search_cli::run(&mut client, &args, &mut out)? {
                Outcome::Done
            } else {
                Outcome::NotFound
            }
        }
        ClientCommand::Cluster { command } => cluster(&mut client, command, &mut out)?,
    };
    out.flush()?;
    Ok(outcome)
}

/// Checks what can be checked without a server; returns BATCHPUT's pairs.
fn validate(command: &ClientCommand) -> anyhow::Result<Option<Pairs>> {
    Ok(match command {
        ClientCommand::Batchput { keys, values } => Some(parse_batch(keys, values)?),
        ClientCommand::Put { key, .. } if key.is_empty() => bail!("the key must not be empty"),
        _ => None,
    })
}

/// A client for `command`: membership changes may wait for a learner to
/// catch up, so they get a longer reply timeout than anything else.
fn connect(addr: &str, command: &ClientCommand) -> anyhow::Result<Client> {
    let io_timeout_ms = match command {
        ClientCommand::Cluster {
            command:
                ClusterCommand::AddLearner { .. }
                | ClusterCommand::AddNode { .. }
                | ClusterCommand::Promote { .. }
                | ClusterCommand::RemoveNode { .. }
                | ClusterCommand::StepDown,
        } => MEMBERSHIP_TIMEOUT_MS,
        _ => REQUEST_TIMEOUT_MS,
    };
    let options = ClientOptions {
        connect_timeout_ms: CONNECT_TIMEOUT_MS,
        io_timeout_ms,
        ..ClientOptions::default()
    };
    Ok(Client::connect_with(addr, options)?)
}

/// `key: value` lines, escaped as the text protocol escapes them.
fn print_pairs(pairs: &[(bytes::Bytes, bytes::Bytes)], out: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    for (key, value) in pairs {
        line.clear();
        text::escape_key(key, &mut line);
        line.extend_from_slice(b": ");
        text::escape_value(value, &mut line);
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

/// One escaped key per line.
fn print_keys(keys: &[bytes::Bytes], out: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    for key in keys {
        line.clear();
        text::escape_key(key, &mut line);
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

/// Runs one `strata cluster ...` command.
fn cluster(
    client: &mut Client,
    command: ClusterCommand,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let (id, peer_addr);
    let args: Vec<&str> = match &command {
        ClusterCommand::Status => vec!["CLUSTER", "STATUS"],
        ClusterCommand::Info => vec!["CLUSTER", "INFO"],
        ClusterCommand::Nodes => vec!["CLUSTER", "MEMBERS"],
        ClusterCommand::Leader => vec!["CLUSTER", "LEADER"],
        ClusterCommand::StepDown => vec!["CLUSTER", "STEPDOWN"],
        ClusterCommand::AddLearner {
            id: n,
            peer_addr: a,
        }
        | ClusterCommand::AddNode {
            id: n,
            peer_addr: a,
        } => {
            id = n.to_string();
            peer_addr = a.clone();
            let verb = if matches!(command, ClusterCommand::AddNode { .. }) {
                "ADDNODE"
            } else {
                "ADDLEARNER"
            };
            vec!["CLUSTER", verb, &id, &peer_addr]
        }
        ClusterCommand::Promote { id: n } | ClusterCommand::RemoveNode { id: n } => {
            id = n.to_string();
            let verb = if matches!(command, ClusterCommand::Promote { .. }) {
                "PROMOTE"
            } else {
                "REMOVENODE"
            };
            vec!["CLUSTER", verb, &id]
        }
    };
    let reply = client.call(&args)?;
    let shown = args.join(" ");
    if let Reply::Error(e) = &reply {
        bail!("{shown}: {e}");
    }
    if let ClusterCommand::Leader = command {
        return match leader_line(&reply) {
            Some(Some(line)) => {
                writeln!(out, "{line}")?;
                Ok(Outcome::Done)
            }
            Some(None) => {
                eprintln!("no leader known");
                Ok(Outcome::NotFound)
            }
            None => bail!("{shown}: unexpected reply {}", abbreviate(&reply)),
        };
    }
    let text = match &reply {
        Reply::Bulk(b) | Reply::Verbatim { text: b, .. } => String::from_utf8_lossy(b).into_owned(),
        Reply::Status(s) => s.to_string(),
        other => bail!("{shown}: unexpected reply {}", abbreviate(other)),
    };
    // Status text uses CRLF line endings; print native ones.
    let text = text.replace("\r\n", "\n");
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    Ok(Outcome::Done)
}

/// `<id> <peer_addr> <client_addr>` from a CLUSTER LEADER reply; `Some(None)`
/// for nil (no leader known), `None` for a malformed reply.
fn leader_line(reply: &Reply) -> Option<Option<String>> {
    let text = |r: &Reply| match r {
        Reply::Integer(n) => Some(n.to_string()),
        Reply::Bulk(b) | Reply::Verbatim { text: b, .. } => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Reply::Status(s) => Some(s.to_string()),
        Reply::Null => Some("-".to_string()),
        _ => None,
    };
    match reply {
        Reply::Null | Reply::NullArray => Some(None),
        Reply::Array(items) if items.len() == 3 => {
            let parts: Option<Vec<String>> = items.iter().map(text).collect();
            parts.map(|p| Some(p.join(" ")))
        }
        _ => None,
    }
}

/// A short rendering of a reply for error messages.
fn abbreviate(reply: &Reply) -> String {
    let mut shown = format!("{reply:?}");
    if shown.len() > 200 {
        let mut cut = 200;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    shown
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
/// Keys and values, unescaped.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_batch(keys: &OsString, values: &OsString) -> anyhow::Result<Pairs> {
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
    fn leader_lines() {
        let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec().into());
        let reply = Reply::Array(vec![
            Reply::Integer(2),
            bulk("127.0.0.1:7400"),
            bulk("127.0.0.1:7379"),
        ]);
        assert_eq!(
            leader_line(&reply),
            Some(Some("2 127.0.0.1:7400 127.0.0.1:7379".to_string()))
        );
        assert_eq!(leader_line(&Reply::Null), Some(None));
        assert_eq!(leader_line(&Reply::NullArray), Some(None));
        assert_eq!(leader_line(&Reply::Integer(1)), None);
        assert_eq!(leader_line(&Reply::Array(vec![Reply::Integer(1)])), None);
    }

    #[test]
    fn cluster_usage_errors_exit_2_without_connecting() {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Wrapper {
            #[command(subcommand)]
            command: ClientCommand,
        }
        // Node ids start at 1; a missing address is a usage error.
        assert!(Wrapper::try_parse_from(["strata", "cluster", "promote", "0"]).is_err());
        assert!(Wrapper::try_parse_from(["strata", "cluster", "add-node", "4"]).is_err());
        assert!(Wrapper::try_parse_from(["strata", "cluster", "bogus"]).is_err());
        let parsed =
            Wrapper::try_parse_from(["strata", "cluster", "add-learner", "4", "127.0.0.1:1"])
                .unwrap();
        assert!(matches!(
            parsed.command,
            ClientCommand::Cluster {
                command: ClusterCommand::AddLearner { id: 4, .. }
            }
        ));
        // Connection refused on a port nothing listens on: exit 2.
        let code = run(
            "127.0.0.1:9",
            ClientCommand::Cluster {
                command: ClusterCommand::Leader,
            },
        );
        assert_eq!(code, ExitCode::from(2));
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
