//! The ratio table: one row per (durability level, test), strata beside
//! each peer (redis, valkey, a baseline strata) with strata ÷ peer.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Level, Measurement, SINGLE_KEY_LABEL, Server};

/// One side of a row: what one server achieved in one test (the median
/// over rounds when a run had several).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cell {
    pub ops_per_s: Option<f64>,
    pub p50_latency_us: Option<f64>,
    pub p99_latency_us: Option<f64>,
    pub note: Option<String>,
}

impl From<&Measurement> for Cell {
    fn from(m: &Measurement) -> Cell {
        Cell {
            ops_per_s: m.ops_per_s,
            p50_latency_us: m.p50_latency_us,
            p99_latency_us: m.p99_latency_us,
            note: m.note.clone(),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even
/// count); None when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

impl Cell {
    /// One cell from the rounds of one (level, server, test): the median
    /// of each figure over the rounds that produced it, and every distinct
    /// note, with how many rounds had no number.
    pub fn from_rounds(ms: &[&Measurement]) -> Cell {
        if let [m] = ms {
            return Cell::from(*m);
        }
        let of =
            |f: fn(&Measurement) -> Option<f64>| median(ms.iter().filter_map(|m| f(m)).collect());
        let mut notes: Vec<&str> = Vec::new();
        for n in ms.iter().filter_map(|m| m.note.as_deref()) {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        let failed = ms.iter().filter(|m| m.ops_per_s.is_none()).count();
        let mut note = notes.join("; ");
        if failed > 0 && failed < ms.len() {
            note = format!("{failed} of {} rounds without a number: {note}", ms.len());
        }
        Cell {
            ops_per_s: of(|m| m.ops_per_s),
            p50_latency_us: of(|m| m.p50_latency_us),
            p99_latency_us: of(|m| m.p99_latency_us),
            note: (!note.is_empty()).then_some(note),
        }
    }

    fn not_run() -> Cell {
        Cell {
            note: Some("not run".into()),
            ..Cell::default()
        }
    }
}

/// A peer's side of a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerCell {
    pub server: Server,
    #[serde(flatten)]
    pub cell: Cell,
    /// strata ops/s ÷ this peer's ops/s; above 1 means strata is faster.
    /// None when either side has no number.
    pub throughput_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioRow {
    pub level: Level,
    pub test: String,
    pub strata: Cell,
    /// One per peer of the run, in [`Server::PEERS`] order.
    pub peers: Vec<PeerCell>,
}

impl RatioRow {
    pub fn peer(&self, server: Server) -> Option<&PeerCell> {
        self.peers.iter().find(|p| p.server == server)
    }

    /// strata ÷ `server`, when both have a number.
    pub fn ratio(&self, server: Server) -> Option<f64> {
        self.peer(server).and_then(|p| p.throughput_ratio)
    }

    /// Strata's cell and then each peer's, in column order.
    pub fn cells(&self) -> impl Iterator<Item = (Server, &Cell)> {
        std::iter::once((Server::Strata, &self.strata))
            .chain(self.peers.iter().map(|p| (p.server, &p.cell)))
    }
}

/// The peers that appear in `measurements`, in [`Server::PEERS`] order.
pub fn peers_of(measurements: &[Measurement]) -> Vec<Server> {
    Server::PEERS
        .into_iter()
        .filter(|p| measurements.iter().any(|m| m.server == *p))
        .collect()
}

/// The peers of the rows' table (those of the first row; all rows have
/// the same).
pub fn peers_of_rows(rows: &[RatioRow]) -> Vec<Server> {
    rows.first()
        .map(|r| r.peers.iter().map(|p| p.server).collect())
        .unwrap_or_default()
}

/// Pairs the measurements into rows: levels in [`Level::ALL`] order, tests
/// in the order they were first measured, one column per peer present.
/// Several rounds of a cell become their median; a side that was never
/// measured is an empty cell noted "not run".
pub fn ratio_rows(measurements: &[Measurement]) -> Vec<RatioRow> {
    let mut tests: Vec<&str> = Vec::new();
    for m in measurements {
        if !tests.contains(&m.test.as_str()) {
            tests.push(&m.test);
        }
    }
    let peers = peers_of(measurements);
    let cell = |level: Level, server: Server, test: &str| {
        let ms: Vec<&Measurement> = measurements
            .iter()
            .filter(|m| m.level == level && m.server == server && m.test == test)
            .collect();
        (!ms.is_empty()).then(|| Cell::from_rounds(&ms))
    };
    let mut rows = Vec::new();
    for level in Level::ALL {
        for test in &tests {
            let strata = cell(level, Server::Strata, test);
            let peer_cells: Vec<(Server, Option<Cell>)> =
                peers.iter().map(|&p| (p, cell(level, p, test))).collect();
            if strata.is_none() && peer_cells.iter().all(|(_, c)| c.is_none()) {
                continue;
            }
            let strata = strata.unwrap_or_else(Cell::not_run);
            let peers = peer_cells
                .into_iter()
                .map(|(server, c)| {
                    let cell = c.unwrap_or_else(Cell::not_run);
                    let throughput_ratio = match (strata.ops_per_s, cell.ops_per_s) {
                        (Some(s), Some(p)) if p > 0.0 => Some(s / p),
                        _ => None,
                    };
                    PeerCell {
                        server,
                        cell,
                        throughput_ratio,
                    }
                })
                .collect();
            rows.push(RatioRow {
                level,
                test: test.to_string(),
                strata,
                peers,
            });
        }
    }
    rows
}

/// Geometric mean of strata ÷ `peer` over the tests of one level (the
/// usual way to average ratios), with the number of tests it covers; None
/// if no test of that level has that ratio.
pub fn geomean_ratio(rows: &[RatioRow], level: Level, peer: Server) -> Option<(f64, usize)> {
    let ratios: Vec<f64> = rows
        .iter()
        .filter(|r| r.level == level)
        .filter_map(|r| r.ratio(peer))
        .filter(|r| *r > 0.0)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let mean_ln = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64;
    Some((mean_ln.exp(), ratios.len()))
}

fn ops(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.0}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

/// `p50 / p99` in milliseconds, the unit redis-benchmark reports in.
fn latency_ms(c: &Cell) -> String {
    let ms = |us: Option<f64>| us.map_or_else(|| "-".into(), |us| format!("{:.3}", us / 1000.0));
    if c.p50_latency_us.is_none() && c.p99_latency_us.is_none() {
        return "n/a".into();
    }
    format!("{} / {}", ms(c.p50_latency_us), ms(c.p99_latency_us))
}

/// Column headers: level, test, strata ops/s, then per peer its ops/s and
/// strata ÷ peer, then every server's latencies.
fn headers(peers: &[Server]) -> Vec<String> {
    let mut h = vec!["level".into(), "test".into(), "strata ops/s".into()];
    for p in peers {
        h.push(format!("{} ops/s", p.name()));
        h.push(format!("strata÷{}", p.name()));
    }
    h.push("strata p50/p99 ms".into());
    for p in peers {
        h.push(format!("{} p50/p99 ms", p.name()));
    }
    h
}

/// Indices of the ratio columns in [`headers`] (bold in markdown).
fn ratio_columns(peers: &[Server]) -> Vec<usize> {
    (0..peers.len()).map(|i| 4 + 2 * i).collect()
}

fn cells(r: &RatioRow) -> Vec<String> {
    let mut c = vec![
        r.level.name().to_string(),
        r.test.clone(),
        ops(r.strata.ops_per_s),
    ];
    for p in &r.peers {
        c.push(ops(p.cell.ops_per_s));
        c.push(ratio(p.throughput_ratio));
    }
    c.push(latency_ms(&r.strata));
    for p in &r.peers {
        c.push(latency_ms(&p.cell));
    }
    c
}

/// Notes of cells without numbers (or with suspect ones), one per line.
fn notes(rows: &[RatioRow]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        for (server, c) in r.cells() {
            if let Some(n) = &c.note {
                out.push(format!(
                    "{} / {} / {}: {n}",
                    r.level.name(),
                    r.test,
                    server.name()
                ));
            }
        }
    }
    out
}

/// The geometric-mean lines, one per level and peer, without a bullet.
fn geomean_lines(rows: &[RatioRow], markdown: bool) -> Vec<String> {
    let peers = peers_of_rows(rows);
    let mut out = Vec::new();
    for level in Level::ALL {
        for &peer in &peers {
            if let Some((g, n)) = geomean_ratio(rows, level, peer) {
                let (name, g) = if markdown {
                    (format!("`{}`", level.name()), format!("**{g:.2}**"))
                } else {
                    (level.name().to_string(), format!("{g:.2}"))
                };
                out.push(format!(
                    "geometric mean strata÷{}, {name}: {g} over {n} tests ({})",
                    peer.name(),
                    level.pairing(&[peer])
                ));
            }
        }
    }
    out
}

/// What a reader must know about the row labels, if anything.
fn key_footnote(rows: &[RatioRow]) -> Option<String> {
    rows.iter()
        .any(|r| r.test.ends_with(SINGLE_KEY_LABEL))
        .then(|| {
            format!(
                "rows marked {SINGLE_KEY_LABEL}: redis-benchmark without -r, every request \
                 on one key (flatters a server that writes a key once per commit group)"
            )
        })
}

/// A fixed-width table for the terminal, then the geometric means and notes.
pub fn render_text(rows: &[RatioRow]) -> String {
    let headers = headers(&peers_of_rows(rows));
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let mut widths_chars: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &body {
        for (w, c) in widths_chars.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |fields: &[String]| {
        for (i, (f, w)) in fields.iter().zip(&widths_chars).enumerate() {
            // Names left-aligned, numbers right-aligned.
            let pad = " ".repeat(w - f.chars().count());
            if i < 2 {
                let _ = write!(s, "{f}{pad}  ");
            } else {
                let _ = write!(s, "{pad}{f}  ");
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
    };
    line(&headers);
    let mut previous_level = None;
    for (r, cells) in rows.iter().zip(&body) {
        if previous_level.is_some_and(|l| l != r.level) {
            line(&vec![String::new(); headers.len()]);
        }
        previous_level = Some(r.level);
        line(cells);
    }
    s.push('\n');
    for g in geomean_lines(rows, false) {
        let _ = writeln!(s, "{g}");
    }
    if let Some(f) = key_footnote(rows) {
        let _ = writeln!(s, "{f}");
    }
    for n in notes(rows) {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

/// A GitHub-flavoured markdown table (plus geometric means and notes) to
/// paste into BENCHMARKS.md; `preamble` is written above it.
pub fn render_markdown(rows: &[RatioRow], preamble: &str) -> String {
    let peers = peers_of_rows(rows);
    let headers = headers(&peers);
    let mut s = String::new();
    s.push_str(preamble);
    if !preamble.ends_with("\n\n") {
        s.push('\n');
    }
    let _ = writeln!(s, "| {} |", headers.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "--:|".repeat(headers.len() - 2));
    let bold = ratio_columns(&peers);
    for r in rows {
        let mut c = cells(r);
        // Bold ratios make the table scannable.
        for &i in &bold {
            if c[i] != "n/a" {
                c[i] = format!("**{}**", c[i]);
            }
        }
        let _ = writeln!(s, "| {} |", c.join(" | "));
    }
    s.push('\n');
    for g in geomean_lines(rows, true) {
        let _ = writeln!(s, "- {g}");
    }
    if let Some(f) = key_footnote(rows) {
        let _ = writeln!(s, "- {f}");
    }
    let notes = notes(rows);
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            let _ = writeln!(s, "- {}", n.replace('|', "\\|"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(server: Server, test: &str, ops: Option<f64>, round: u32) -> Measurement {
        Measurement {
            level: Level::Always,
            server,
            test: test.into(),
            tool: "fixture".into(),
            ops_per_s: ops,
            p50_latency_us: ops.map(|o| 1e6 / o),
            p99_latency_us: ops.map(|o| 4e6 / o),
            note: ops.is_none().then(|| "timed out".to_string()),
            round,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn rounds_become_medians_and_failed_rounds_are_counted() {
        let ms = [
            m(Server::Strata, "set", Some(100.0), 1),
            m(Server::Strata, "set", Some(300.0), 2),
            m(Server::Strata, "set", Some(200.0), 3),
            m(Server::Valkey, "set", Some(100.0), 1),
            m(Server::Valkey, "set", None, 2),
            m(Server::Valkey, "set", Some(300.0), 3),
        ];
        let rows = ratio_rows(&ms);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].strata.ops_per_s, Some(200.0));
        assert_eq!(rows[0].strata.note, None);
        let valkey = rows[0].peer(Server::Valkey).unwrap();
        assert_eq!(valkey.cell.ops_per_s, Some(200.0));
        assert_eq!(
            valkey.cell.note.as_deref(),
            Some("1 of 3 rounds without a number: timed out")
        );
        assert_eq!(rows[0].ratio(Server::Valkey), Some(1.0));
        // Only the peers that were measured get a column.
        assert_eq!(peers_of_rows(&rows), vec![Server::Valkey]);
        assert_eq!(rows[0].ratio(Server::Redis), None);
    }

    #[test]
    fn two_peers_get_two_ratio_columns_and_geomeans() {
        let ms = [
            m(Server::Strata, "set", Some(100.0), 1),
            m(Server::Redis, "set", Some(50.0), 1),
            m(Server::Valkey, "set", Some(200.0), 1),
            m(Server::Strata, "get (single key)", Some(90.0), 1),
            m(Server::Redis, "get (single key)", Some(90.0), 1),
        ];
        let rows = ratio_rows(&ms);
        assert_eq!(rows[0].ratio(Server::Redis), Some(2.0));
        assert_eq!(rows[0].ratio(Server::Valkey), Some(0.5));
        // Valkey never ran the second test: a noted, empty cell.
        assert_eq!(
            rows[1].peer(Server::Valkey).unwrap().cell.note.as_deref(),
            Some("not run")
        );
        let (g, n) = geomean_ratio(&rows, Level::Always, Server::Redis).unwrap();
        assert!((g - 2f64.sqrt()).abs() < 1e-12 && n == 2, "{g} {n}");
        assert_eq!(
            geomean_ratio(&rows, Level::Always, Server::Valkey),
            Some((0.5, 1))
        );
        let text = render_text(&rows);
        let header = text.lines().next().unwrap();
        for h in [
            "redis ops/s",
            "strata÷redis",
            "valkey ops/s",
            "strata÷valkey",
            "valkey p50/p99 ms",
        ] {
            assert!(header.contains(h), "{header}");
        }
        assert!(text.contains("geometric mean strata÷valkey, always: 0.50 over 1 tests (strata --fsync always vs valkey appendfsync always)"), "{text}");
        assert!(text.contains("rows marked (single key)"), "{text}");
        let md = render_markdown(&rows, "");
        assert!(
            md.contains("| always | set | 100 | 50 | **2.00** | 200 | **0.50** |"),
            "{md}"
        );
        assert!(
            md.contains("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n"),
            "{md}"
        );
        assert!(
            md.contains("| always | get (single key) | 90 | 90 | **1.00** | n/a | n/a |"),
            "{md}"
        );
    }
}
