//! Merging per-connection results and rendering them as a table, CSV or
//! JSON. Latencies are microseconds in CSV/JSON, milliseconds with three
//! decimals in the table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::{ConnStats, KindStats, new_histogram};
use crate::workload::OpKind;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    fn of<C: hdrhistogram::Counter>(h: &Histogram<C>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// Results of one operation type, or of all together (`op` = "all").
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub op: &'static str,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub latency_us: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub keys: u64,
    pub errors: u64,
    pub duration_s: f64,
    pub keys_per_s: f64,
}

/// The whole run; serialised as the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: Option<String>,
    pub target: String,
    /// `resp` or `etcd`.
    pub protocol: &'static str,
    pub workload: &'static str,
    pub distribution: &'static str,
    pub zipf_theta: Option<f64>,
    pub connections: u64,
    pub pipeline: u64,
    pub keyspace: u64,
    pub value_size_bytes: u64,
    /// `text` (compressible) or `random` (incompressible): see `values.rs`.
    pub values: &'static str,
    pub batch: Option<u64>,
    pub scan_length: Option<u64>,
    pub seed: u64,
    pub warmup_s: f64,
    /// Measured wall time: from the end of the warm-up to the last reply.
    pub duration_s: f64,
    pub load: Option<LoadReport>,
    pub ops: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub latency_us: Latency,
    /// Per operation type; one entry for single-operation workloads.
    pub by_op: Vec<OpReport>,
    pub failed_connections: u64,
}

/// Per-type and overall results merged over all connections.
pub struct Merged {
    pub all: OpReport,
    pub by_op: Vec<OpReport>,
}

pub fn merge(conns: &[ConnStats], duration_s: f64, sigfig: u8) -> Merged {
    let rate = |ops: u64| {
        if duration_s > 0.0 {
            round1(ops as f64 / duration_s)
        } else {
            0.0
        }
    };
    let mut total: Histogram<u64> = new_histogram(sigfig);
    let mut total_ops = 0;
    let mut total_errors = 0;
    let mut by_op = Vec::new();
    for kind in OpKind::ALL {
        let mut merged: Option<KindStats<u64>> = None;
        for stats in conns
            .iter()
            .filter_map(|c| c.by_kind[kind.index()].as_ref())
        {
            let m = merged.get_or_insert_with(|| KindStats {
                ops: 0,
                errors: 0,
                latency_us: new_histogram(sigfig),
            });
            m.ops += stats.ops;
            m.errors += stats.errors;
            add_widening(&mut m.latency_us, &stats.latency_us);
        }
        if let Some(m) = merged {
            // Same count type, bounds and precision: adding cannot fail.
            let _ = total.add(&m.latency_us);
            total_ops += m.ops;
            total_errors += m.errors;
            by_op.push(OpReport {
                op: kind.name(),
                ops: m.ops,
                errors: m.errors,
                ops_per_s: rate(m.ops),
                latency_us: Latency::of(&m.latency_us),
            });
        }
    }
    Merged {
        all: OpReport {
            op: "all",
            ops: total_ops,
            errors: total_errors,
            ops_per_s: rate(total_ops),
            latency_us: Latency::of(&total),
        },
        by_op,
    }
}

/// Adds a per-connection histogram (u32 counts, to halve its memory) into
/// a merged one (u64 counts). `Histogram::add` needs equal count types and
/// `Histogram::new_from` copies only the settings, not the counts, so we
/// re-record every non-empty bucket; both histograms have the same bounds
/// and precision, so each value lands in the same bucket.
fn add_widening(into: &mut Histogram<u64>, from: &Histogram<u32>) {
    for bucket in from.iter_recorded() {
        into.saturating_record_n(
            bucket.value_iterated_to(),
            u64::from(bucket.count_at_value()),
        );
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The human-readable report.
pub fn table(r: &Report, mixed: bool) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "workload {}  target {} ({})  connections {}  pipeline {}  keyspace {}  distribution {}",
        r.workload, r.target, r.protocol, r.connections, r.pipeline, r.keyspace, r.distribution
    );
    if let Some(theta) = r.zipf_theta {
        let _ = write!(s, " (theta {theta})");
    }
    let _ = write!(s, "  value {} B ({})", r.value_size_bytes, r.values);
    if let Some(batch) = r.batch {
        let _ = write!(s, "  batch {batch} keys");
    }
    if let Some(len) = r.scan_length {
        let _ = write!(s, "  scan length {len}");
    }
    let _ = write!(s, "  seed {}", r.seed);
    if let Some(label) = &r.label {
        let _ = write!(s, "  label {label}");
    }
    s.push('\n');
    if let Some(load) = &r.load {
        let _ = writeln!(
            s,
            "load: {} keys in {:.3} s ({:.0} keys/s, {} errors)",
            load.keys, load.duration_s, load.keys_per_s, load.errors
        );
    }
    let _ = writeln!(
        s,
        "measured {:.3} s after {} s warm-up",
        r.duration_s, r.warmup_s
    );
    let _ = writeln!(
        s,
        "{:<8} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "op", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    let mut row = |op: &str, ops: u64, ops_per_s: f64, l: &Latency, errors: u64| {
        let _ = writeln!(
            s,
            "{:<8} {:>12} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            op,
            ops,
            ops_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            errors
        );
    };
    row("all", r.ops, r.ops_per_s, &r.latency_us, r.errors);
    if mixed {
        for o in &r.by_op {
            row(o.op, o.ops, o.ops_per_s, &o.latency_us, o.errors);
        }
    }
    if r.failed_connections > 0 {
        let _ = writeln!(
            s,
            "{} connection(s) stopped early (see stderr)",
            r.failed_connections
        );
    }
    s
}

const CSV_HEADER: &str = "label,target,workload,distribution,zipf_theta,connections,pipeline,\
keyspace,value_size_bytes,batch,scan_length,seed,op,ops,errors,duration_s,ops_per_s,\
p50_us,p90_us,p99_us,p999_us,max_us,mean_us,load_keys,load_duration_s,protocol,values";

/// RFC 4180 quoting, only where needed.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Header plus one row for all operations and, for mixed workloads, one
/// row per operation type.
pub fn csv(r: &Report, mixed: bool) -> String {
    let mut s = String::new();
    s.push_str(CSV_HEADER);
    s.push('\n');
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut row = |op: &str, ops: u64, errors: u64, ops_per_s: f64, l: &Latency| {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(r.label.as_deref().unwrap_or("")),
            csv_field(&r.target),
            r.workload,
            r.distribution,
            r.zipf_theta.map(|t| t.to_string()).unwrap_or_default(),
            r.connections,
            r.pipeline,
            r.keyspace,
            r.value_size_bytes,
            opt(r.batch),
            opt(r.scan_length),
            r.seed,
            op,
            ops,
            errors,
            r.duration_s,
            ops_per_s,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            opt(r.load.as_ref().map(|l| l.keys)),
            r.load
                .as_ref()
                .map(|l| l.duration_s.to_string())
                .unwrap_or_default(),
            r.protocol,
            r.values,
        );
    };
    row("all", r.ops, r.errors, r.ops_per_s, &r.latency_us);
    if mixed {
        for o in &r.by_op {
            row(o.op, o.ops, o.errors, o.ops_per_s, &o.latency_us);
        }
    }
    s
}

/// One line of JSON (so runs can be appended to a JSON Lines file).
pub fn json(r: &Report) -> String {
    let mut s = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            label: Some("a,\"b\"".into()),
            target: "127.0.0.1:1".into(),
            protocol: "resp",
            workload: "ycsb-a",
            distribution: "uniform",
            zipf_theta: None,
            connections: 2,
            pipeline: 1,
            keyspace: 10,
            value_size_bytes: 100,
            values: "text",
            batch: None,
            scan_length: None,
            seed: 1,
            warmup_s: 0.0,
            duration_s: 1.0,
            load: None,
            ops: 3,
            errors: 0,
            ops_per_s: 3.0,
            latency_us: Latency::default(),
            by_op: vec![OpReport {
                op: "read",
                ops: 3,
                errors: 0,
                ops_per_s: 3.0,
                latency_us: Latency::default(),
            }],
            failed_connections: 0,
        }
    }

    #[test]
    fn csv_rows_match_header_and_quote_label() {
        let text = csv(&sample(), true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("\"a,\"\"b\"\"\",127.0.0.1:1,ycsb-a,"));
        // Without the quoted label, every row has as many fields as the header.
        let fields = |l: &str| l.split(',').count();
        assert_eq!(
            fields(lines[0]),
            fields(&lines[2].replacen("\"a,\"\"b\"\"\"", "x", 1))
        );
    }

    #[test]
    fn merging_keeps_counts_and_quantiles() {
        let mut a: Histogram<u32> = new_histogram(3);
        let mut b: Histogram<u32> = new_histogram(3);
        for v in 1..=1000 {
            a.saturating_record(v);
        }
        b.saturating_record_n(5000, 10);
        let mut total: Histogram<u64> = new_histogram(3);
        add_widening(&mut total, &a);
        add_widening(&mut total, &b);
        assert_eq!(total.len(), 1010);
        assert_eq!(total.value_at_quantile(0.5), a.value_at_quantile(0.505));
        assert_eq!(total.max(), b.max());
    }

    #[test]
    fn json_is_one_parseable_line() {
        let text = json(&sample());
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(v["by_op"][0]["op"], "read");
        assert_eq!(v["latency_us"]["p99"], 0);
    }
}
