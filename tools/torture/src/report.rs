//! What a run found, and how it is printed (`--format table|json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::server::EngineActivity;
use crate::workload::OpCounts;

/// Kinds of durability or correctness violations. Any one fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An acknowledged write (SET, MSET, INCR) is missing after a restart,
    /// or a key seen present after an earlier restart has vanished.
    Lost,
    /// An MSET batch is partly applied (some of its keys, not all).
    Torn,
    /// A key holds a value that was never written to it.
    Corrupt,
    /// An acknowledged DEL was undone, or a key seen absent came back.
    Resurrected,
    /// A counter is above the number of INCRs sent, or an INCR answered an
    /// unexpected number.
    Counter,
    /// DBSIZE differs from the number of keys the tool knows to exist.
    Dbsize,
    /// A full SCAN found keys the tool never wrote (or missed some).
    Phantom,
    /// An unexpected reply or connection failure while the server was up.
    Reply,
    /// The server exited by itself (we did not kill it).
    Crashed,
    /// The server did not come back after a kill (no ready line, exited, or
    /// never answered a GET).
    Recovery,
    /// `--search`: the search index's document count disagrees with the
    /// keys stored (every key is covered, so documents plus values it
    /// skipped must be DBSIZE).
    Search,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::Lost => "lost",
            ViolationKind::Torn => "torn",
            ViolationKind::Corrupt => "corrupt",
            ViolationKind::Resurrected => "resurrected",
            ViolationKind::Counter => "counter",
            ViolationKind::Dbsize => "dbsize",
            ViolationKind::Phantom => "phantom",
            ViolationKind::Reply => "reply",
            ViolationKind::Crashed => "crashed",
            ViolationKind::Recovery => "recovery",
            ViolationKind::Search => "search",
        }
    }
}

/// One violation, with the exact key so that it can be looked into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub cycle: u32,
    pub key: Option<String>,
    pub detail: String,
}

impl Violation {
    pub fn new(kind: ViolationKind, cycle: u32, key: Option<String>, detail: String) -> Self {
        Violation {
            kind,
            cycle,
            key,
            detail,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in cycle {}", self.kind.name(), self.cycle)?;
        if let Some(key) = &self.key {
            write!(f, ", key {key:?}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// An extra kill while the server was recovering.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecoveryKill {
    pub after_ms: u64,
    /// Whether it landed before the ready line (inside recovery proper).
    pub before_ready: bool,
}

/// One cycle: write, kill -9, restart, verify.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub cycle: u32,
    /// How long the writers ran before the kill.
    pub kill_after_ms: u64,
    pub acked: OpCounts,
    /// Writes sent but not acknowledged when the server died.
    pub in_flight: u64,
    /// Of those, how many turned out applied (allowed either way).
    pub in_flight_applied: u64,
    pub recovery_kill: Option<RecoveryKill>,
    /// Restart: spawn to the ready line.
    pub ready_ms: Option<f64>,
    /// Restart: spawn to the first successful GET.
    pub first_get_ms: Option<f64>,
    /// The engine at the kill, from the killed incarnation's log.
    pub engine: EngineActivity,
    pub dbsize: Option<i64>,
    pub violations: u64,
    pub elapsed_s: f64,
}

/// p50 and max of a series, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    pub count: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least half at or below it.
        let rank = v.len().div_ceil(2);
        Stats {
            count: v.len(),
            p50_ms: v[rank - 1],
            max_ms: v[v.len() - 1],
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// As text: JSON numbers above 2^53 lose precision in many readers.
    pub seed: String,
    pub cycles: u32,
    pub writers: usize,
    pub fsync: String,
    pub server_args: Vec<String>,
    pub acked: OpCounts,
    pub acked_total: u64,
    pub in_flight: u64,
    pub in_flight_applied: u64,
    pub lost: u64,
    pub torn: u64,
    pub other_violations: u64,
    pub violations_by_kind: BTreeMap<ViolationKind, u64>,
    /// The first violations (at most 100), in the order found.
    pub violations: Vec<Violation>,
    pub ready: Stats,
    pub first_get: Stats,
    pub recovery_kills: u64,
    pub recovery_kills_before_ready: u64,
    pub kills_in_flush: u64,
    pub kills_in_merge: u64,
    pub flushes: u64,
    pub merges: u64,
    /// Keys in the store at the final full check (SCAN), if it ran.
    pub final_keys: Option<u64>,
    /// Where the data and server log are, if they were kept.
    pub kept_dir: Option<String>,
    pub replay: String,
    pub elapsed_s: f64,
    pub passed: bool,
}

pub fn cycle_line(c: &CycleReport) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}ms"));
    let mut line = format!(
        "cycle {:>4}  kill@{:>4}ms  acked {:>6} (set {} mset {} del {} incr {})  in-flight {} (applied {})",
        c.cycle,
        c.kill_after_ms,
        c.acked.total(),
        c.acked.sets,
        c.acked.msets,
        c.acked.dels,
        c.acked.incrs,
        c.in_flight,
        c.in_flight_applied,
    );
    if let Some(rk) = c.recovery_kill {
        let _ = write!(
            line,
            "  +kill in recovery@{}ms{}",
            rk.after_ms,
            if rk.before_ready {
                ""
            } else {
                " (after ready)"
            }
        );
    }
    let _ = write!(
        line,
        "  ready {} first-get {}  dbsize {}",
        ms(c.ready_ms),
        ms(c.first_get_ms),
        c.dbsize.map_or("-".to_string(), |d| d.to_string())
    );
    if c.engine.in_flush {
        line.push_str("  [killed in flush]");
    }
    if c.engine.in_merge {
        line.push_str("  [killed in compaction]");
    }
    let _ = write!(
        line,
        "  {}  {:.1}s",
        if c.violations == 0 {
            "ok".to_string()
        } else {
            format!("FAILED ({} violations)", c.violations)
        },
        c.elapsed_s
    );
    line
}

pub fn summary_table(s: &Summary) -> String {
    let mut t = String::new();
    let mut row = |name: &str, value: String| {
        let _ = writeln!(t, "  {name:<22} {value}");
    };
    row("seed", s.seed.clone());
    row(
        "cycles",
        format!(
            "{} ({} writers, --fsync {}{})",
            s.cycles,
            s.writers,
            s.fsync,
            if s.server_args.is_empty() {
                String::new()
            } else {
                format!(", server args {}", s.server_args.join(" "))
            }
        ),
    );
    row(
        "acknowledged writes",
        format!(
            "{}: {} SET, {} MSET ({} keys), {} DEL, {} INCR",
            s.acked_total,
            s.acked.sets,
            s.acked.msets,
            s.acked.mset_keys,
            s.acked.dels,
            s.acked.incrs
        ),
    );
    row(
        "in flight at kills",
        format!(
            "{} (unacknowledged; {} applied anyway, which is allowed)",
            s.in_flight, s.in_flight_applied
        ),
    );
    row("lost", s.lost.to_string());
    row("torn batches", s.torn.to_string());
    let others: Vec<String> = s
        .violations_by_kind
        .iter()
        .filter(|(k, _)| !matches!(k, ViolationKind::Lost | ViolationKind::Torn))
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    row(
        "other violations",
        if others.is_empty() {
            s.other_violations.to_string()
        } else {
            format!("{} ({})", s.other_violations, others.join(", "))
        },
    );
    row(
        "restart to ready",
        format!(
            "p50 {:.0} ms, max {:.0} ms ({} restarts)",
            s.ready.p50_ms, s.ready.max_ms, s.ready.count
        ),
    );
    row(
        "restart to first GET",
        format!(
            "p50 {:.0} ms, max {:.0} ms",
            s.first_get.p50_ms, s.first_get.max_ms
        ),
    );
    row(
        "kills during recovery",
        format!(
            "{} ({} before the ready line)",
            s.recovery_kills, s.recovery_kills_before_ready
        ),
    );
    row(
        "engine (server log)",
        format!(
            "{} memtable flushes and {} merge compactions completed; kills inside a flush {}, inside a compaction {} (best effort)",
            s.flushes, s.merges, s.kills_in_flush, s.kills_in_merge
        ),
    );
    if let Some(keys) = s.final_keys {
        row(
            "final full check",
            format!("{keys} keys (SCAN = DBSIZE = expected)"),
        );
    }
    if let Some(dir) = &s.kept_dir {
        row("kept", dir.clone());
    }
    row("elapsed", format!("{:.1} s", s.elapsed_s));
    row("result", if s.passed { "PASS" } else { "FAIL" }.to_string());
    if !s.passed {
        let _ = writeln!(t, "  replay: {}", s.replay);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p50_is_nearest_rank() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.count, s.p50_ms, s.max_ms), (4, 2.0, 5.0));
        let s = Stats::of(&[7.0]);
        assert_eq!((s.p50_ms, s.max_ms), (7.0, 7.0));
        assert_eq!(Stats::of(&[]).count, 0);
    }
}
