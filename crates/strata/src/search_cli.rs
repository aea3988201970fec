//! `strata search value|text|semantic <index> <query>`: the server's
//! SEARCH command (see the server's `cmd/search/strata.rs`), printed for
//! people or, with `--json`, for programs.
//!
//! Output: one line per hit, best first: `<score>  <key>: <value>`, key
//! and value escaped as `strata range` escapes them (the score is BM25
//! for `text`, the distance for `semantic`, 0 or the tag match's score for
//! `value`). `--json`: one JSON array of `{"key", "score", "value"}`
//! (key and value as UTF-8, invalid bytes replaced). Exit 0 with hits, 1
//! with none, 2 on any error. While the index is still being built, a
//! note on stderr says the results may be incomplete.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, bail};
use strata_client::Client;
use strata_client::resp::Reply;
use strata_protocol::text;

/// Which index field the search uses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Exact match on the index's first TAG field.
    Value,
    /// Full text, ranked by BM25 (FT.SEARCH's query language).
    Text,
    /// Nearest by meaning, on the index's first EMBED vector field.
    Semantic,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Value => "VALUE",
            Mode::Text => "TEXT",
            Mode::Semantic => "SEMANTIC",
        }
    }
}

/// `strata search`'s arguments.
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// value: exact tag; text: BM25; semantic: nearest by meaning.
    #[arg(value_enum)]
    pub mode: Mode,
    /// Index name (FT.CREATE's).
    pub index: OsString,
    /// The query: a tag, words in FT.SEARCH's syntax, or a sentence.
    pub query: OsString,
    /// Print at most this many hits.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// text: the lowest score kept; semantic: the largest distance kept.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Print a JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// A hit as the server sent it.
struct Hit {
    key: bytes::Bytes,
    score: f64,
    value: bytes::Bytes,
}

/// Runs the search and prints it; returns whether anything was found.
pub fn run(client: &mut Client, args: &SearchArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let mut request: Vec<Vec<u8>> = vec![
        b"SEARCH".to_vec(),
        args.mode.word().as_bytes().to_vec(),
        args.index.as_bytes().to_vec(),
        args.query.as_bytes().to_vec(),
        b"LIMIT".to_vec(),
        args.limit.to_string().into_bytes(),
    ];
    if let Some(t) = args.threshold {
        request.extend([b"THRESHOLD".to_vec(), t.to_string().into_bytes()]);
    }
    let reply = client.call(&request)?;
    let (hits, building) = parse(reply)?;
    if building {
        eprintln!("note: the index is still being built; results may be incomplete");
    }
    if args.json {
        print_json(&hits, out)?;
    } else {
        print_lines(&hits, out)?;
    }
    Ok(!hits.is_empty())
}

fn parse(reply: Reply) -> anyhow::Result<(Vec<Hit>, bool)> {
    let items = match reply {
        Reply::Error(e) => bail!("{e}"),
        Reply::Array(items) => items,
        other => bail!("unexpected reply to SEARCH: {other:?}"),
    };
    let [Reply::Array(raw), Reply::Integer(building)] = items.as_slice() else {
        bail!("unexpected reply to SEARCH: {items:?}");
    };
    let hits = raw
        .iter()
        .map(|hit| match hit {
            Reply::Array(f) => match f.as_slice() {
                [Reply::Bulk(key), score, Reply::Bulk(value)] => Ok(Hit {
                    key: key.clone(),
                    score: score_of(score)?,
                    value: value.clone(),
                }),
                _ => bail!("unexpected hit in SEARCH's reply: {f:?}"),
            },
            other => bail!("unexpected hit in SEARCH's reply: {other:?}"),
        })
        .collect::<anyhow::Result<Vec<Hit>>>()?;
    Ok((hits, *building == 1))
}

/// A score as RESP2 (bulk text) or RESP3 (double) carries it.
fn score_of(r: &Reply) -> anyhow::Result<f64> {
    match r {
        Reply::Double(d) => Ok(*d),
        Reply::Bulk(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .context("a score that is not a number"),
        other => bail!("unexpected score {other:?}"),
    }
}

fn print_lines(hits: &[Hit], out: &mut impl Write) -> io::Result<()> {
    let mut line = Vec::new();
    for hit in hits {
        line.clear();
        line.extend_from_slice(format!("{:.4}  ", hit.score).as_bytes());
        text::escape_key(&hit.key, &mut line);
        line.extend_from_slice(b": ");
        text::escape_value(&hit.value, &mut line);
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

fn print_json(hits: &[Hit], out: &mut impl Write) -> io::Result<()> {
    let list: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            serde_json::json!({
                "key": String::from_utf8_lossy(&h.key),
                "score": h.score,
                "value": String::from_utf8_lossy(&h.value),
            })
        })
        .collect();
    writeln!(out, "{}", serde_json::Value::Array(list))
}
