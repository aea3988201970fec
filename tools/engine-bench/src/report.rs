//! Output: a human table, CSV or JSON, each with the ratios to fjall.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, EngineKind, SyncMode, Workload};
use crate::workload::{CaseResult, LatencyPer};

/// What the numbers mean; printed with the table and put in the JSON.
pub fn notes(config: &Config) -> Vec<String> {
    vec![
        format!(
            "keys 0..{} as 16-byte ASCII keys, values {} B (incompressible); \
             writes per write case {}, reads/seeks per read case {}",
            config.num, config.value_size_bytes, config.writes, config.reads
        ),
        "batch N: N keys go into ONE atomic write batch/transaction (fjall WriteBatch, \
         redb WriteTransaction, LMDB RwTxn, RocksDB WriteBatch). batch 1 = one client \
         writing alone; batch 100 = Strata's group commit under load (many clients' \
         writes, one batch, one fsync)"
            .into(),
        "sync on: every batch is durable before the next starts (fjall persist(SyncData), \
         redb Durability::Immediate, LMDB default sync commit, RocksDB sync=true). \
         sync off: no fsync (fjall/RocksDB/LMDB: written to the OS, survives a process \
         crash; redb Durability::None: not even that until a later durable commit)"
            .into(),
        "ops/s counts keys written, keys read, or seeks; with --repeat it is the median run's, \
         and spread = (fastest - slowest) / median. Latency (hdrhistogram) is per \
         write BATCH for writes (= per op at batch 1) and per op for reads; a seekrandom \
         op is one seek plus reading the next entries"
            .into(),
        format!(
            "readrandom/seekrandom/overwrite start from an untimed fill of all {} keys; \
             reads use one read view (snapshot/transaction) for the whole phase, as \
             Strata's readers share the last published snapshot",
            config.num
        ),
    ]
}

/// The throughput of each engine relative to fjall for one (workload, sync,
/// batch); > 1 means faster than fjall.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub workload: Workload,
    pub sync: Option<SyncMode>,
    pub batch: Option<usize>,
    /// In the order of --engines; fjall itself is 1.
    pub ops_per_s_vs_fjall: Vec<EngineRatio>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EngineRatio {
    pub engine: EngineKind,
    pub ratio: f64,
}

pub fn ratios(results: &[CaseResult]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for base in results.iter().filter(|r| r.engine == EngineKind::Fjall) {
        let same = results.iter().filter(|r| {
            r.workload == base.workload && r.sync == base.sync && r.batch == base.batch
        });
        out.push(Ratio {
            workload: base.workload,
            sync: base.sync,
            batch: base.batch,
            ops_per_s_vs_fjall: same
                .map(|r| EngineRatio {
                    engine: r.engine,
                    ratio: r.ops_per_s / base.ops_per_s.max(f64::MIN_POSITIVE),
                })
                .collect(),
        });
    }
    out
}

fn sync_name(s: Option<SyncMode>) -> &'static str {
    s.map_or("-", SyncMode::name)
}

fn batch_name(b: Option<usize>) -> String {
    b.map_or_else(|| "-".to_string(), |b| b.to_string())
}

/// Fastest minus slowest run as a share of the median: how far to trust
/// the figure. "-" for a single run.
fn spread(r: &CaseResult) -> String {
    if r.repeats < 2 {
        return "-".into();
    }
    let pct = 100.0 * (r.ops_per_s_max - r.ops_per_s_min) / r.ops_per_s.max(f64::MIN_POSITIVE);
    format!("{pct:.0}%")
}

fn latency_per(r: &CaseResult) -> &'static str {
    match r.latency_per {
        LatencyPer::Op => "op",
        LatencyPer::Batch => "batch",
    }
}

pub fn table(config: &Config, results: &[CaseResult]) -> String {
    let mut out = String::new();
    for note in notes(config) {
        for (i, line) in wrap(&note, NOTE_WIDTH_CHARS).iter().enumerate() {
            let _ = writeln!(out, "{} {line}", if i == 0 { "#" } else { "#  " });
        }
    }
    out.push('\n');
    let header = [
        "engine", "workload", "sync", "batch", "ops", "ops/s", "spread", "lat per", "p50 us",
        "p99 us", "max us", "disk MiB", "check",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.engine.to_string(),
                r.workload.to_string(),
                sync_name(r.sync).into(),
                batch_name(r.batch),
                r.ops.to_string(),
                format!("{:.0}", r.ops_per_s),
                spread(r),
                latency_per(r).into(),
                format!("{:.1}", r.latency_p50_us),
                format!("{:.1}", r.latency_p99_us),
                format!("{:.1}", r.latency_max_us),
                format!("{:.1}", r.disk_size_bytes as f64 / (1024.0 * 1024.0)),
                if r.truncated {
                    format!("{} (TRUNCATED at time limit)", r.check)
                } else {
                    r.check.clone()
                },
            ]
        })
        .collect();
    write_aligned(&mut out, &header, &rows);

    let ratios = ratios(results);
    if ratios.is_empty() {
        out.push_str("\n(no ratios: fjall was not among the engines)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "\nops/s relative to fjall (> 1 = faster than fjall, < 1 = slower)"
    );
    let engines: Vec<EngineKind> = config.engines.clone();
    let mut header: Vec<&str> = vec!["workload", "sync", "batch"];
    header.extend(engines.iter().map(|e| e.name()));
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|ratio| {
            let mut row = vec![
                ratio.workload.to_string(),
                sync_name(ratio.sync).into(),
                batch_name(ratio.batch),
            ];
            for e in &engines {
                row.push(
                    ratio
                        .ops_per_s_vs_fjall
                        .iter()
                        .find(|x| x.engine == *e)
                        .map_or_else(|| "-".into(), |x| format!("{:.2}", x.ratio)),
                );
            }
            row
        })
        .collect();
    write_aligned(&mut out, &header, &rows);
    out
}

/// Notes are wrapped to fit a terminal next to the table.
const NOTE_WIDTH_CHARS: usize = 96;

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// Left-aligned text columns, right-aligned numbers.
fn write_aligned(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |cell: &str| cell.parse::<f64>().is_ok();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(cell);
            } else if numeric(cell) {
                let _ = write!(s, "{cell:>w$}  ");
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), out);
    }
}

pub fn csv(results: &[CaseResult]) -> String {
    let mut out = String::from(
        "engine,workload,sync,batch,ops,elapsed_s,ops_per_s,repeats,ops_per_s_min,ops_per_s_max,\
         latency_per,latency_p50_us,\
         latency_p99_us,latency_max_us,disk_size_bytes,truncated,ops_per_s_vs_fjall,check\n",
    );
    let ratios = ratios(results);
    for r in results {
        let vs_fjall = ratios
            .iter()
            .find(|x| x.workload == r.workload && x.sync == r.sync && x.batch == r.batch)
            .and_then(|x| x.ops_per_s_vs_fjall.iter().find(|e| e.engine == r.engine))
            .map_or_else(String::new, |e| format!("{:.4}", e.ratio));
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.6},{:.1},{},{:.1},{:.1},{},{:.3},{:.3},{:.3},{},{},{},\"{}\"",
            r.engine,
            r.workload,
            sync_name(r.sync),
            batch_name(r.batch),
            r.ops,
            r.elapsed_s,
            r.ops_per_s,
            r.repeats,
            r.ops_per_s_min,
            r.ops_per_s_max,
            latency_per(r),
            r.latency_p50_us,
            r.latency_p99_us,
            r.latency_max_us,
            r.disk_size_bytes,
            r.truncated,
            vs_fjall,
            r.check.replace('"', "\"\""),
        );
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    config: &'a Config,
    notes: Vec<String>,
    results: &'a [CaseResult],
    ratios_vs_fjall: Vec<Ratio>,
}

pub fn json(config: &Config, results: &[CaseResult]) -> Result<String> {
    let report = JsonReport {
        config,
        notes: notes(config),
        results,
        ratios_vs_fjall: ratios(results),
    };
    Ok(serde_json::to_string_pretty(&report)? + "\n")
}
