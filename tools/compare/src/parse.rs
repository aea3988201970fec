//! Parsing the two load generators' machine-readable output.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One row of `redis-benchmark --csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisBenchmarkRow {
    /// As redis-benchmark names it, e.g. `MSET (10 keys)`.
    pub test: String,
    /// Infinite when the test took less than redis-benchmark's clock tick.
    pub ops_per_s: f64,
    pub p50_latency_us: Option<f64>,
    pub p99_latency_us: Option<f64>,
}

/// Parses `redis-benchmark --csv` output. Redis 6+ prints a header
/// (`"test","rps","avg_latency_ms",...,"p50_latency_ms",...,"p99_latency_ms",...`);
/// older versions print only `"SET","12345.67"` rows, so columns are found
/// by header name when there is a header and latencies are optional.
pub fn parse_redis_benchmark_csv(text: &str) -> Result<Vec<RedisBenchmarkRow>> {
    let mut rows = Vec::new();
    // Column indices of rps, p50 and p99; the old headerless format has
    // rps in the second column and no latencies.
    let mut rps_col = 1;
    let mut p50_col = None;
    let mut p99_col = None;
    for line in text.lines() {
        // Progress output uses '\r'; only the text after the last one is a row.
        let line = line.rsplit('\r').next().unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        let fields = split_csv_line(line);
        if fields.len() < 2 {
            continue;
        }
        if fields[0].eq_ignore_ascii_case("test") {
            let find = |name: &str| fields.iter().position(|f| f.eq_ignore_ascii_case(name));
            rps_col = find("rps").context("redis-benchmark CSV header has no rps column")?;
            p50_col = find("p50_latency_ms");
            p99_col = find("p99_latency_ms");
            continue;
        }
        let number = |col: Option<usize>| -> Option<f64> {
            col.and_then(|c| fields.get(c))
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        // Anything that is not a row with a numeric rate (a warning, an
        // error message) is not a result. `inf` is: a test that finished
        // within redis-benchmark's 1 ms clock (too few requests to time).
        let too_fast = fields
            .get(rps_col)
            .is_some_and(|f| f.eq_ignore_ascii_case("inf"));
        let Some(ops_per_s) = number(Some(rps_col)).or(too_fast.then_some(f64::INFINITY)) else {
            continue;
        };
        let ms_to_us = |ms: f64| ms * 1000.0;
        rows.push(RedisBenchmarkRow {
            test: fields[0].clone(),
            ops_per_s,
            p50_latency_us: number(p50_col).map(ms_to_us),
            p99_latency_us: number(p99_col).map(ms_to_us),
        });
    }
    if rows.is_empty() {
        bail!("no result rows in redis-benchmark output");
    }
    Ok(rows)
}

/// Splits one CSV line; fields may be double-quoted with `""` as an
/// escaped quote (what redis-benchmark writes).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The parts of one `strata-bench --format json` report that we compare.
#[derive(Debug, Clone, PartialEq)]
pub struct StrataBenchRun {
    pub workload: String,
    pub ops: u64,
    pub errors: u64,
    pub failed_connections: u64,
    pub ops_per_s: f64,
    pub p50_latency_us: Option<f64>,
    pub p99_latency_us: Option<f64>,
}

/// Parses strata-bench's JSON output: one JSON object per line (JSON
/// Lines); the last report in `text` wins. Lines that are not JSON objects
/// are ignored, so stray log lines do not break parsing.
pub fn parse_strata_bench_json(text: &str) -> Result<StrataBenchRun> {
    let report = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v.is_object())
        .context("no JSON report in strata-bench output")?;
    let u64_of = |v: &Value| v.as_u64().unwrap_or(0);
    let ops_per_s = report["ops_per_s"]
        .as_f64()
        .context("strata-bench report has no ops_per_s")?;
    let ops = u64_of(&report["ops"]);
    // strata-bench reports an all-zero histogram when nothing was measured;
    // a latency of 0 then means "unknown", not "instant".
    let latency = |q: &str| {
        report["latency_us"][q]
            .as_f64()
            .filter(|_| ops > 0)
            .filter(|v| v.is_finite())
    };
    Ok(StrataBenchRun {
        workload: report["workload"].as_str().unwrap_or("?").to_string(),
        ops,
        errors: u64_of(&report["errors"]),
        failed_connections: u64_of(&report["failed_connections"]),
        ops_per_s,
        p50_latency_us: latency("p50"),
        p99_latency_us: latency("p99"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_split_handles_quotes() {
        assert_eq!(
            split_csv_line(r#""MSET (10 keys)","1.5","a""b",x"#),
            vec!["MSET (10 keys)", "1.5", "a\"b", "x"]
        );
    }
}
