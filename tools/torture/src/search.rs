//! `--search`: a search index over every key, kept in the same batch as
//! the records. After every kill and restart, FT.INFO's documents plus
//! the values it skipped (binary values are not UTF-8 text) must equal
//! DBSIZE: an index entry committed without its record, or a record
//! without its entries, would show as a difference. The exact recount of
//! every entry after kill -9 is `crates/storage/tests/search_crash.rs`.

use std::net::SocketAddr;

use anyhow::{Context, bail};

use crate::report::{Violation, ViolationKind};
use crate::resp::{CallError, Conn, Reply};
use crate::workload::{CONNECT_TIMEOUT, IO_TIMEOUT};

pub const INDEX: &str = "torture";

/// FT.CREATE on the empty store (built at once, so it covers every write).
pub fn create_index(addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = Conn::connect(addr, CONNECT_TIMEOUT, IO_TIMEOUT).context("connect")?;
    match conn.call(&[
        "FT.CREATE",
        INDEX,
        "ON",
        "STRING",
        "SCHEMA",
        "value",
        "TEXT",
    ])? {
        Reply::Simple(s) if s == "OK" => Ok(()),
        other => bail!("FT.CREATE answered {other:?}"),
    }
}

/// The index's documents and skipped values against DBSIZE.
pub fn check_index(conn: &mut Conn, cycle: u32) -> Vec<Violation> {
    match counts(conn) {
        Ok(None) => Vec::new(),
        Ok(Some((docs, skipped, dbsize))) if docs + skipped == dbsize => Vec::new(),
        Ok(Some((docs, skipped, dbsize))) => vec![Violation::new(
            ViolationKind::Search,
            cycle,
            None,
            format!("FT.INFO: {docs} documents + {skipped} skipped values, DBSIZE {dbsize}"),
        )],
        Err(e) => vec![Violation::new(
            ViolationKind::Search,
            cycle,
            None,
            format!("FT.INFO failed: {e}"),
        )],
    }
}

/// (documents, skipped, DBSIZE), or None while the index is building
/// (it never is: it was created on an empty store).
fn counts(conn: &mut Conn) -> Result<Option<(i64, i64, i64)>, String> {
    let info = conn.call(&["FT.INFO", INDEX]).map_err(|e| describe(&e))?;
    let Reply::Array(Some(items)) = info else {
        return Err(format!("FT.INFO answered {info:?}"));
    };
    let field = |name: &str| -> Result<i64, String> {
        let at = items
            .iter()
            .position(|r| {
                matches!(r, Reply::Simple(s) if s == name)
                    || matches!(r, Reply::Bulk(Some(b)) if b == name.as_bytes())
            })
            .ok_or_else(|| format!("FT.INFO has no {name}"))?;
        match items.get(at + 1) {
            Some(Reply::Int(n)) => Ok(*n),
            Some(Reply::Bulk(Some(b))) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|f| f as i64)
                .ok_or_else(|| format!("FT.INFO {name} is not a number")),
            Some(Reply::Simple(s)) => s
                .parse::<f64>()
                .map(|f| f as i64)
                .map_err(|_| format!("FT.INFO {name} is not a number")),
            other => Err(format!("FT.INFO {name} = {other:?}")),
        }
    };
    if field("indexing")? != 0 {
        return Ok(None);
    }
    let docs = field("num_docs")?;
    let skipped = field("hash_indexing_failures")?;
    let dbsize = match conn.call(&["DBSIZE"]).map_err(|e| describe(&e))? {
        Reply::Int(n) => n,
        other => return Err(format!("DBSIZE answered {other:?}")),
    };
    Ok(Some((docs, skipped, dbsize)))
}

fn describe(e: &CallError) -> String {
    format!("{e:?}")
}
