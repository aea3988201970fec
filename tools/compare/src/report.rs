//! The files a run leaves in the output directory.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::Plan;
use crate::model::{KeyMode, LoadKind, Measurement, SINGLE_KEY_LABEL, Server};
use crate::plot::plot_all;
use crate::table::{RatioRow, render_markdown};

/// Everything about the run that a reader of the numbers needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub timestamp_utc: String,
    pub command: String,
    pub cpus: usize,
    pub os: String,
    pub strata_version: String,
    pub redis_server_version: String,
    pub redis_benchmark_version: String,
    /// `valkey-server --version`, when valkey ran (absent in older files).
    #[serde(default)]
    pub valkey_server_version: Option<String>,
    /// The baseline strata's path and version, when one ran.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Peers left out of this run, each with the reason.
    #[serde(default)]
    pub skipped: Vec<String>,
    pub plan: Plan,
    pub elapsed_s: f64,
}

#[derive(Serialize)]
struct RawResults<'a> {
    run: &'a RunInfo,
    measurements: &'a [Measurement],
    ratios: &'a [RatioRow],
}

/// What `--replot` needs back from a `compare-<ts>.json`; the ratio rows
/// are recomputed from the measurements.
#[derive(Deserialize)]
pub struct SavedResults {
    pub run: RunInfo,
    pub measurements: Vec<Measurement>,
}

/// Reads a `compare-<ts>.json`, of this version or an older one: files
/// from before random keys became the default have no key modes, and
/// their redis-benchmark rows (one key) are relabelled as single-key.
pub fn read_saved(path: &Path) -> Result<SavedResults> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut saved: SavedResults =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if saved.run.plan.key_modes.is_empty() {
        saved.run.plan.key_modes = vec![KeyMode::Single];
        for m in &mut saved.measurements {
            if m.tool == "redis-benchmark" && !m.test.ends_with(SINGLE_KEY_LABEL) {
                m.test = format!("{} {SINGLE_KEY_LABEL}", m.test);
            }
        }
    }
    Ok(saved)
}

/// `YYYYMMDD-HHMMSS` in UTC: sorts by time and is safe in file names.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem_s) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem_s / 3600,
        rem_s % 3600 / 60,
        rem_s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm); avoids a date crate for one file name.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// "Redis server v=7.0.15 sha=... malloc=..." → "Redis server v=7.0.15".
fn short_version(v: &str) -> &str {
    v.split(" sha=").next().unwrap_or_default()
}

/// "a", "a and b", "a, b and c".
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn markdown_preamble(info: &RunInfo) -> String {
    let p = &info.plan;
    let peer_names: Vec<&str> = p.peers.iter().map(|s| s.name()).collect();
    let redis_like: Vec<&str> = p
        .peers
        .iter()
        .filter(|s| s.is_redis_like())
        .map(|s| s.name())
        .collect();
    let no_rdb = if redis_like.is_empty() {
        String::new()
    } else {
        format!("; {} with `--save ''`", join_names(&redis_like))
    };
    let mut versions = vec![info.strata_version.clone()];
    if p.peers.contains(&Server::Redis) {
        versions.push(short_version(&info.redis_server_version).to_string());
    }
    if let Some(v) = &info.valkey_server_version {
        versions.push(short_version(v).to_string());
    }
    if let Some(b) = &info.baseline {
        versions.push(format!("baseline {b}"));
    }
    let mut loads = Vec::new();
    if p.loads.contains(&LoadKind::RedisBenchmark) {
        let keys: Vec<String> = p
            .key_modes
            .iter()
            .map(|k| match k {
                KeyMode::Random => format!("on random keys (`-r {}`)", p.random_keys),
                KeyMode::Single => format!("on one key (rows marked {SINGLE_KEY_LABEL})"),
            })
            .collect();
        loads.push(format!(
            "redis-benchmark `-t set,get,mset -c {c} -n {n}` without and with `-P 16`, {keys}",
            c = p.connections,
            n = p.requests,
            keys = keys.join(" and "),
        ));
    }
    if p.loads.contains(&LoadKind::Ycsb) {
        loads.push(format!(
            "strata-bench YCSB `--distribution zipfian --load --keyspace {k} -c {c} \
             --threads {t} --duration-s {d}`",
            k = p.keyspace,
            c = p.connections,
            t = p.bench_threads,
            d = p.duration_s,
        ));
    }
    let rounds = if p.rounds > 1 {
        format!(
            " {} rounds, the server order alternating; each cell is the median.",
            p.rounds
        )
    } else {
        String::new()
    };
    let skipped = info
        .skipped
        .iter()
        .map(|s| format!(" **Not run:** {s}."))
        .collect::<String>();
    format!(
        "### strata vs {peers}, {ts} UTC\n\n\
         `{cmd}` on {cpus} CPUs ({os}); {versions}. One server at a time on \
         127.0.0.1, each in its own temp dir{no_rdb}. {loads}.{rounds} Ratio = strata ops/s ÷ peer ops/s \
         (above 1: strata faster). Latencies in ms.{skipped}\n\n",
        peers = join_names(&peer_names),
        ts = info.timestamp_utc,
        cmd = info.command,
        cpus = info.cpus,
        os = info.os,
        versions = versions.join("; "),
        loads = loads.join("; "),
    )
}

/// Writes `compare-<ts>.json`, `compare-<ts>.md` and the SVG charts into
/// `dir` (created if needed); returns the paths written.
pub fn write_all(
    dir: &Path,
    info: &RunInfo,
    measurements: &[Measurement],
    rows: &[RatioRow],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = format!("compare-{}", info.timestamp_utc);
    let json_path = dir.join(format!("{stem}.json"));
    let raw = RawResults {
        run: info,
        measurements,
        ratios: rows,
    };
    let json = serde_json::to_string_pretty(&raw)?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, render_markdown(rows, &markdown_preamble(info)))
        .with_context(|| format!("writing {}", md_path.display()))?;
    let mut written = vec![json_path, md_path];
    written.extend(plot_all(rows, dir, &stem)?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_joined_as_in_prose() {
        assert_eq!(join_names(&[]), "");
        assert_eq!(join_names(&["redis"]), "redis");
        assert_eq!(join_names(&["redis", "valkey"]), "redis and valkey");
        assert_eq!(
            join_names(&["redis", "valkey", "baseline"]),
            "redis, valkey and baseline"
        );
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101-000000");
        // 2024-02-29T23:59:59Z, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(utc_timestamp(t), "20240229-235959");
    }
}
