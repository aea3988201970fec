//! The strata ÷ redis table: one row per (durability level, test).

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Level, Measurement, Server};

/// One side of a row: what one server achieved in one test.
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioRow {
    pub level: Level,
    pub test: String,
    pub strata: Cell,
    pub redis: Cell,
    /// strata ops/s ÷ redis ops/s; above 1 means strata is faster. None
    /// when either side has no number.
    pub throughput_ratio: Option<f64>,
}

/// Pairs the measurements into rows: levels in [`Level::ALL`] order, tests
/// in the order they were first measured. A side that was never measured
/// is an empty cell noted "not run".
pub fn ratio_rows(measurements: &[Measurement]) -> Vec<RatioRow> {
    let mut tests: Vec<&str> = Vec::new();
    for m in measurements {
        if !tests.contains(&m.test.as_str()) {
            tests.push(&m.test);
        }
    }
    let find = |level: Level, server: Server, test: &str| {
        measurements
            .iter()
            .find(|m| m.level == level && m.server == server && m.test == test)
    };
    let mut rows = Vec::new();
    for level in Level::ALL {
        for test in &tests {
            let strata = find(level, Server::Strata, test);
            let redis = find(level, Server::Redis, test);
            if strata.is_none() && redis.is_none() {
                continue;
            }
            let cell = |m: Option<&Measurement>| {
                m.map(Cell::from).unwrap_or_else(|| Cell {
                    note: Some("not run".into()),
                    ..Cell::default()
                })
            };
            let (strata, redis) = (cell(strata), cell(redis));
            let throughput_ratio = match (strata.ops_per_s, redis.ops_per_s) {
                (Some(s), Some(r)) if r > 0.0 => Some(s / r),
                _ => None,
            };
            rows.push(RatioRow {
                level,
                test: test.to_string(),
                strata,
                redis,
                throughput_ratio,
            });
        }
    }
    rows
}

/// Geometric mean of the throughput ratios of one level (the usual way to
/// average ratios), with the number of tests it covers; None if no test of
/// that level has a ratio.
pub fn geomean_ratio(rows: &[RatioRow], level: Level) -> Option<(f64, usize)> {
    let ratios: Vec<f64> = rows
        .iter()
        .filter(|r| r.level == level)
        .filter_map(|r| r.throughput_ratio)
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

const HEADERS: [&str; 7] = [
    "level",
    "test",
    "strata ops/s",
    "redis ops/s",
    "strata÷redis",
    "strata p50/p99 ms",
    "redis p50/p99 ms",
];

fn cells(r: &RatioRow) -> [String; 7] {
    [
        r.level.name().to_string(),
        r.test.clone(),
        ops(r.strata.ops_per_s),
        ops(r.redis.ops_per_s),
        ratio(r.throughput_ratio),
        latency_ms(&r.strata),
        latency_ms(&r.redis),
    ]
}

/// Notes of cells without numbers (or with suspect ones), one per line.
fn notes(rows: &[RatioRow]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        for (server, c) in [("strata", &r.strata), ("redis", &r.redis)] {
            if let Some(n) = &c.note {
                out.push(format!("{} / {} / {server}: {n}", r.level.name(), r.test));
            }
        }
    }
    out
}

/// A fixed-width table for the terminal, then the geometric means and notes.
pub fn render_text(rows: &[RatioRow]) -> String {
    let body: Vec<[String; 7]> = rows.iter().map(cells).collect();
    let mut widths_chars = HEADERS.map(|h| h.chars().count());
    for row in &body {
        for (w, c) in widths_chars.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |fields: &[String]| {
        for (i, (f, w)) in fields.iter().zip(widths_chars).enumerate() {
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
    line(&HEADERS.map(String::from));
    let mut previous_level = None;
    for (r, cells) in rows.iter().zip(&body) {
        if previous_level.is_some_and(|l| l != r.level) {
            line(&<[String; 7]>::default());
        }
        previous_level = Some(r.level);
        line(cells);
    }
    s.push('\n');
    for level in Level::ALL {
        if let Some((g, n)) = geomean_ratio(rows, level) {
            let _ = writeln!(
                s,
                "geometric mean strata÷redis, {}: {g:.2} over {n} tests ({})",
                level.name(),
                level.pairing()
            );
        }
    }
    for n in notes(rows) {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

/// A GitHub-flavoured markdown table (plus geometric means and notes) to
/// paste into BENCHMARKS.md; `preamble` is written above it.
pub fn render_markdown(rows: &[RatioRow], preamble: &str) -> String {
    let mut s = String::new();
    s.push_str(preamble);
    if !preamble.ends_with("\n\n") {
        s.push('\n');
    }
    let _ = writeln!(s, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|");
    for r in rows {
        let mut c = cells(r);
        // Bold ratios make the table scannable.
        if r.throughput_ratio.is_some() {
            c[4] = format!("**{}**", c[4]);
        }
        let _ = writeln!(s, "| {} |", c.join(" | "));
    }
    s.push('\n');
    for level in Level::ALL {
        if let Some((g, n)) = geomean_ratio(rows, level) {
            let _ = writeln!(
                s,
                "- geometric mean strata÷redis, `{}`: **{g:.2}** over {n} tests ({})",
                level.name(),
                level.pairing()
            );
        }
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
