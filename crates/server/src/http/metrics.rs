//! `/metrics`: Prometheus metrics in the OpenMetrics text format.
//!
//! **Nothing is counted twice.** One [`Collector`] reads, at scrape time,
//! the statistics the server keeps anyway for INFO: the per-command
//! counters and latency histograms (`command_stats.rs`, filled from each
//! connection's tally, so the request path gains no lock and no shared
//! atomic), `ServerStats`, the store's `StoreStats` (with the group-size
//! and fsync histograms its writer keeps, one relaxed add per group or
//! fsync) and the cluster's `ClusterStatus`. A scrape costs what an
//! `INFO all` costs, once per scrape interval.
//!
//! **Names** follow Prometheus's conventions: prefix `strata_`, base units
//! in the name (`_seconds`, `_bytes`), `_total` on counters, histograms
//! for latencies. **Labels** are bounded sets only: command names (the
//! command table), error codes (errorstats keeps at most 128), keyspace
//! names, result, member node ids. Never a key or a client address.
//!
//! Counters go back to zero on CONFIG RESETSTAT, as INFO's do; Prometheus
//! reads that as a counter reset (`rate()` handles it).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use strata_replication::{ClusterNode, ClusterStatus};
use strata_storage::{BucketCounts, StoreStats};

use crate::shared::Shared;

/// The media type of the OpenMetrics text format, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Command latency buckets, in ns: 10 µs to 0.5 s, then the rest (INFO's
/// histograms stop at 1 s, so everything slower is in the last one).
const COMMAND_LATENCY_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    u64::MAX,
];

/// The registry `/metrics` encodes: one collector, prefix `strata`.
pub(crate) fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::with_prefix("strata");
    registry.register_collector(Box::new(StrataCollector { shared }));
    registry
}

/// Encodes every metric, ending with `# EOF`.
pub(crate) fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(32 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

struct StrataCollector {
    shared: Arc<Shared>,
}

impl fmt::Debug for StrataCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StrataCollector")
    }
}

impl Collector for StrataCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut out = Families(&mut encoder);
        let shared = &self.shared;
        encode_process(&mut out, shared)?;
        encode_commands(&mut out, shared)?;
        encode_clients(&mut out, shared)?;
        let store = shared.store.stats();
        encode_keys_and_cache(&mut out, &store)?;
        encode_storage(&mut out, &store)?;
        if let Some(node) = &shared.cluster {
            encode_raft(&mut out, node, &node.status())?;
        }
        Ok(())
    }
}

/// A histogram as prometheus-client encodes it: buckets not cumulative,
/// the last bound `f64::MAX` (written `+Inf`).
struct Hist {
    sum: f64,
    buckets: Vec<(f64, u64)>,
}

impl Hist {
    /// From per-bucket counts over integer bounds (the last `u64::MAX`),
    /// scaled into the metric's unit.
    fn from_buckets(b: &BucketCounts, scale: f64, sum: f64) -> Hist {
        let buckets = b
            .bounds
            .iter()
            .zip(&b.counts)
            .map(|(&bound, &n)| {
                let le = if bound == u64::MAX {
                    f64::MAX
                } else {
                    bound as f64 * scale
                };
                (le, n)
            })
            .collect();
        Hist { sum, buckets }
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

/// Writes metric families (one descriptor, then its samples).
struct Families<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Families<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, v: impl EncodeCounterValue) -> fmt::Result {
        self.counter_in(name, help, None, v)
    }

    /// A counter of a unit (`name` without it: the unit is appended).
    fn counter_in(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        v: impl EncodeCounterValue,
    ) -> fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Counter)?;
        m.encode_counter::<NoLabelSet, _, u64>(&v, None)
    }

    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        v: impl EncodeGaugeValue,
    ) -> fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Gauge)?;
        m.encode_gauge(&v)
    }

    /// A family of counters, one per label set; nothing if it has none.
    fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        series: &[(L, u64)],
    ) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in series {
            m.encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
        Ok(())
    }

    fn gauges<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        series: &[(L, u64)],
    ) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Gauge)?;
        for (labels, v) in series {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
        Ok(())
    }

    fn histograms<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        series: &[(L, Hist)],
    ) -> fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Histogram)?;
        for (labels, h) in series {
            m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                h.sum,
                h.count(),
                &h.buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn histogram(&mut self, name: &str, help: &str, unit: Option<&Unit>, h: &Hist) -> fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, unit, MetricType::Histogram)?;
        m.encode_histogram::<NoLabelSet>(h.sum, h.count(), &h.buckets, None)
    }
}

/// `strata_build_info`, start time, memory.
fn encode_process(out: &mut Families, shared: &Shared) -> fmt::Result {
    let mut m = out.0.encode_descriptor(
        "build",
        "Strata's version, and the Redis version whose commands it follows.",
        None,
        MetricType::Info,
    )?;
    m.encode_info(&[
        ("version", crate::VERSION),
        ("redis_version", crate::REDIS_COMPAT_VERSION),
    ])?;
    let up_s = shared.started.elapsed().as_secs_f64();
    let start_s = strata_storage::now_ms() as f64 / 1000.0 - up_s;
    out.gauge(
        "start_time",
        "When the server started, Unix time.",
        Some(&Unit::Seconds),
        start_s,
    )?;
    let mem = crate::memory::read();
    out.gauge(
        "memory_used",
        "Memory the allocator holds from the OS (INFO used_memory).",
        Some(&Unit::Bytes),
        mem.used_bytes,
    )?;
    out.gauge(
        "memory_rss",
        "Resident set size of the process.",
        Some(&Unit::Bytes),
        mem.rss_bytes,
    )
}

/// Commands by name and result, their latency, error replies by code.
fn encode_commands(out: &mut Families, shared: &Shared) -> fmt::Result {
    let stats = &shared.stats.commands;
    let mut calls = Vec::new();
    let mut latency = Vec::new();
    let finite = &COMMAND_LATENCY_BOUNDS_NS[..COMMAND_LATENCY_BOUNDS_NS.len() - 1];
    stats.each_command(finite, |c| {
        let ok = c.calls.saturating_sub(c.failed);
        for (result, n) in [("ok", ok), ("failed", c.failed), ("rejected", c.rejected)] {
            if n > 0 {
                calls.push(([("command", c.name), ("result", result)], n));
            }
        }
        if c.latency.iter().any(|&n| n > 0) {
            let bounds = BucketCounts {
                bounds: &COMMAND_LATENCY_BOUNDS_NS,
                counts: c.latency,
            };
            let sum_s = c.nanos as f64 / 1e9;
            latency.push((
                [("command", c.name)],
                Hist::from_buckets(&bounds, 1e-9, sum_s),
            ));
        }
    });
    out.counters(
        "commands",
        "Commands by name and result: ok, failed (ran and answered an error), rejected \
         (refused before running: arity, key size, unknown subcommand).",
        &calls,
    )?;
    out.histograms(
        "command_duration",
        "Time to run a command until its reply is ready; for a write, its group commit \
         (fsync, Raft round) included.",
        Some(&Unit::Seconds),
        &latency,
    )?;
    let errors: Vec<_> = stats
        .error_counts()
        .into_iter()
        .map(|(code, n)| ([("code", code)], n))
        .collect();
    out.counters(
        "error_replies",
        "Error replies by error code (the first word, as INFO errorstats).",
        &errors,
    )
}

/// Connections, bytes, keyspace hits (INFO clients and stats).
fn encode_clients(out: &mut Families, shared: &Shared) -> fmt::Result {
    let s = &shared.stats;
    out.gauge(
        "connections",
        "Open client connections (RESP and text).",
        None,
        s.connections_current.load(Relaxed),
    )?;
    out.counter(
        "connections_received",
        "Client connections accepted.",
        s.connections_received.load(Relaxed),
    )?;
    out.counter(
        "connections_rejected",
        "Client connections refused: over connections-max, or protected mode.",
        s.connections_rejected.load(Relaxed),
    )?;
    out.counter(
        "request_timeouts",
        "Connections closed because a request did not arrive whole in time.",
        s.request_timeouts.load(Relaxed),
    )?;
    out.counter(
        "protocol_errors",
        "Connections closed on a protocol error.",
        s.protocol_errors.load(Relaxed),
    )?;
    out.counter(
        "clients_evicted",
        "Clients closed to keep all client buffers under client-buffers-size-bytes-max.",
        shared.client_buffers.evicted(),
    )?;
    out.gauge(
        "client_buffers",
        "Bytes held by client connections' buffers.",
        Some(&Unit::Bytes),
        shared.client_buffers.used_bytes(),
    )?;
    out.counter_in(
        "network_received",
        "Bytes read from clients.",
        Some(&Unit::Bytes),
        s.net_input_bytes.load(Relaxed),
    )?;
    out.counter_in(
        "network_sent",
        "Bytes written to clients.",
        Some(&Unit::Bytes),
        s.net_output_bytes.load(Relaxed),
    )?;
    out.counter(
        "keyspace_hits",
        "Key lookups that found the key.",
        s.keyspace_hits.load(Relaxed),
    )?;
    out.counter(
        "keyspace_misses",
        "Key lookups that did not find the key.",
        s.keyspace_misses.load(Relaxed),
    )
}

/// Keys and the read cache.
fn encode_keys_and_cache(out: &mut Families, s: &StoreStats) -> fmt::Result {
    out.gauge(
        "keys",
        "Keys stored, expired ones not yet swept included (DBSIZE).",
        None,
        s.keys,
    )?;
    out.gauge(
        "keys_expiring",
        "Keys with a time to live.",
        None,
        s.expiring_keys,
    )?;
    out.counter(
        "read_cache_hits",
        "Single-key reads answered by the read cache.",
        s.read_cache_hits,
    )?;
    out.counter(
        "read_cache_misses",
        "Single-key reads the read cache did not hold.",
        s.read_cache_misses,
    )?;
    out.gauge(
        "read_cache",
        "Bytes held by the read cache.",
        Some(&Unit::Bytes),
        s.read_cache_size_bytes,
    )?;
    out.gauge(
        "read_cache_entries",
        "Records held by the read cache.",
        None,
        s.read_cache_entries,
    )
}

/// The engine and the writer (INFO persistence).
fn encode_storage(out: &mut Families, s: &StoreStats) -> fmt::Result {
    let mut disk: Vec<_> = s
        .keyspace_disk_bytes
        .iter()
        .map(|&(name, bytes)| ([("keyspace", name)], bytes))
        .collect();
    disk.push(([("keyspace", "journal")], s.journal_disk_space_bytes));
    out.gauges(
        "storage_disk",
        "Bytes on disk per keyspace (data; in a cluster raftlog and dedupe) and the journal.",
        Some(&Unit::Bytes),
        &disk,
    )?;
    out.gauge(
        "storage_write_buffer",
        "Bytes in memtables not yet flushed.",
        Some(&Unit::Bytes),
        s.write_buffer_size_bytes,
    )?;
    out.gauge(
        "storage_block_cache",
        "Bytes in the engine's block cache.",
        Some(&Unit::Bytes),
        s.cache_size_bytes,
    )?;
    out.counter(
        "storage_group_commits",
        "Groups committed (one engine batch each).",
        s.groups_committed,
    )?;
    out.counter(
        "storage_mutations_committed",
        "Mutations committed.",
        s.mutations_committed,
    )?;
    let groups = Hist::from_buckets(&s.group_sizes, 1.0, s.mutations_committed as f64);
    out.histogram(
        "storage_group_commit_mutations",
        "Mutations per group commit.",
        None,
        &groups,
    )?;
    let fsync_s = s.fsync_micros_total as f64 / 1e6;
    let fsyncs = Hist::from_buckets(&s.fsync_micros, 1e-6, fsync_s);
    out.histogram(
        "storage_fsync_duration",
        "Time of each fsync (fdatasync) of the journal.",
        Some(&Unit::Seconds),
        &fsyncs,
    )?;
    encode_storage_health(out, s)
}

/// Stalls, background work, failures.
fn encode_storage_health(out: &mut Families, s: &StoreStats) -> fmt::Result {
    out.gauge(
        "storage_write_stalled",
        "1 while the engine stalls or throttles commits (too many memtables waiting for a \
         flush, or too many L0 tables), else 0; sampled at scrape time.",
        None,
        u64::from(s.write_stalled),
    )?;
    out.gauge(
        "storage_flushes_pending",
        "Memtable flushes waiting or running.",
        None,
        s.outstanding_flushes,
    )?;
    out.gauge(
        "storage_compactions_running",
        "Compactions running now.",
        None,
        s.active_compactions,
    )?;
    out.counter(
        "storage_compactions",
        "Compactions completed.",
        s.compactions_completed,
    )?;
    out.gauge(
        "storage_failed",
        "1 after a failed write or fsync (writes are refused until a restart), else 0.",
        None,
        u64::from(s.failed.is_some()),
    )?;
    out.counter(
        "storage_corruption_errors",
        "Reads refused because they hit damaged data.",
        s.corruption_errors,
    )?;
    out.gauge(
        "storage_version",
        "Version of the published state: the last group committed (single node), the last \
         log index applied (cluster).",
        None,
        s.published_version,
    )
}

/// Raft: leader, term, indexes, lag, snapshots, proposals.
fn encode_raft(out: &mut Families, node: &ClusterNode, s: &ClusterStatus) -> fmt::Result {
    out.gauge(
        "raft_has_leader",
        "1 if this node knows a leader, else 0.",
        None,
        u64::from(s.leader.is_some()),
    )?;
    out.gauge(
        "raft_is_leader",
        "1 if this node is the leader, else 0.",
        None,
        u64::from(s.leader == Some(node.id())),
    )?;
    out.gauge("raft_term", "The current Raft term.", None, s.term)?;
    out.counter(
        "raft_leader_changes",
        "Times this node saw a new leader (the first one included).",
        s.leader_changes,
    )?;
    out.gauge(
        "raft_commit_index",
        "Last log index this node knows committed.",
        None,
        s.commit_index,
    )?;
    out.gauge(
        "raft_applied_index",
        "Last log index applied to this node's store.",
        None,
        s.applied_index,
    )?;
    out.gauge(
        "raft_last_log_index",
        "Last log index in this node's log.",
        None,
        s.last_log_index,
    )?;
    let lag: Vec<_> = s
        .matched
        .iter()
        .filter(|(id, _)| **id != node.id())
        .map(|(id, matched)| {
            let behind = s.last_log_index.saturating_sub(matched.unwrap_or(0));
            ([("follower", id.to_string())], behind)
        })
        .collect();
    out.gauges(
        "raft_follower_lag_entries",
        "On the leader: log entries each follower is behind the leader's log.",
        None,
        &lag,
    )?;
    encode_raft_counters(out, s)
}

fn encode_raft_counters(out: &mut Families, s: &ClusterStatus) -> fmt::Result {
    out.counter(
        "raft_snapshots_built",
        "Snapshots this node built.",
        s.snapshots_built,
    )?;
    out.counter(
        "raft_snapshots_installed",
        "Snapshots this node installed from a leader.",
        s.snapshots_installed,
    )?;
    out.counter(
        "raft_proposals",
        "Log entries this node proposed as leader.",
        s.proposals,
    )?;
    out.counter(
        "raft_proposed_commands",
        "Commands in the log entries this node proposed.",
        s.proposed_commands,
    )?;
    let members = [
        ([("kind", "voter")], s.voters.len() as u64),
        ([("kind", "learner")], s.learners.len() as u64),
    ];
    out.gauges("raft_members", "Cluster members by kind.", None, &members)?;
    let reads = [
        ([("by", "heartbeat")], s.reads_confirmed_by_heartbeat),
        ([("by", "log")], s.reads_confirmed_by_log),
    ];
    out.counters(
        "raft_reads_confirmed",
        "Linearizable reads this node confirmed as leader, by how.",
        &reads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigLayer, ServerConfig};
    use crate::write_path::Writes;

    /// A single node's metrics: every family once, in the OpenMetrics
    /// shape (`# EOF` last), counters with `_total`, units in the names,
    /// and no Raft family.
    #[tokio::test]
    async fn a_single_node_encodes_every_family_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::resolve(ConfigLayer {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        })
        .unwrap();
        let store = strata_storage::LocalStore::open(config.storage.clone()).unwrap();
        let shared = Arc::new(Shared::new(
            store.reader(),
            Writes::Local(store.clone()),
            config,
        ));
        let text = encode(&registry(shared)).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let mut names: Vec<&str> = types.iter().filter_map(|t| t.split(' ').next()).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a family described twice:\n{text}");
        for line in [
            "# TYPE strata_build info",
            "# TYPE strata_storage_fsync_duration_seconds histogram",
            "# UNIT strata_storage_fsync_duration_seconds seconds",
            "# TYPE strata_connections_received counter",
            "strata_connections_received_total 0",
            "strata_storage_fsync_duration_seconds_bucket{le=\"+Inf\"} ",
            "strata_storage_disk_bytes{keyspace=\"data\"} ",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("strata_raft_"), "{text}");
        store.shutdown().await.unwrap();
    }
}
