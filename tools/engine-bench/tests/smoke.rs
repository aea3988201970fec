//! Correctness of the harness, not speed: every workload on every default
//! engine with a tiny key space, sync off. `run_all` itself fails a case
//! whose reads miss a written key or whose seeks come back out of order;
//! these tests check that it ran everything and said so.

use clap::Parser;
use strata_engine_bench::config::Config;
use strata_engine_bench::workload::{LatencyPer, cases};
use strata_engine_bench::{Cli, EngineKind, SyncMode, Workload, report, run_all};

const NUM: u64 = 2000;

#[test]
fn every_workload_on_every_default_engine() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::small(NUM);
    // 7 does not divide 2000: the last batch is a partial one.
    config.batches = vec![1, 7];
    config.dir = Some(data.path().to_path_buf());
    let results = run_all(&config, |_| {}).expect("every case passes its checks");
    assert_eq!(results.len(), cases(&config).len());
    for engine in [EngineKind::Fjall, EngineKind::Redb, EngineKind::Lmdb] {
        for workload in Workload::ALL {
            let of = |batch| {
                results
                    .iter()
                    .filter(|r| r.engine == engine && r.workload == workload && r.batch == batch)
                    .collect::<Vec<_>>()
            };
            if workload.is_write() {
                for batch in [1, 7] {
                    let rs = of(Some(batch));
                    assert_eq!(rs.len(), 1, "{engine} {workload} batch {batch}");
                    let r = rs[0];
                    assert_eq!(r.ops, NUM);
                    assert_eq!(r.sync, Some(SyncMode::Off));
                    assert_eq!(r.latency_per, LatencyPer::Batch);
                    assert_eq!(r.check, format!("{NUM} written keys read back"));
                }
            } else {
                let rs = of(None);
                assert_eq!(rs.len(), 1, "{engine} {workload}");
                let r = rs[0];
                assert_eq!(r.ops, NUM);
                assert_eq!(r.latency_per, LatencyPer::Op);
                match workload {
                    // 100 % hit rate after the fill.
                    Workload::Readrandom => assert_eq!(r.check, format!("hits {NUM}/{NUM}")),
                    Workload::Seekrandom => {
                        assert!(r.check.starts_with(&format!("{NUM} seeks in order")))
                    }
                    _ => unreachable!(),
                }
            }
            for r in results.iter().filter(|r| r.engine == engine) {
                assert!(!r.truncated && r.ops_per_s > 0.0 && r.disk_size_bytes > 0);
                assert!(
                    r.latency_p50_us <= r.latency_p99_us && r.latency_p99_us <= r.latency_max_us
                );
            }
        }
    }
    // Per-case directories are removed afterwards.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);

    // Every format renders, with a ratio row per fjall result.
    let table = report::table(&config, &results);
    assert!(table.contains("relative to fjall") && table.contains("seekrandom"));
    let csv = report::csv(&results);
    assert_eq!(csv.lines().count(), results.len() + 1);
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&config, &results).unwrap()).unwrap();
    assert_eq!(json["results"].as_array().unwrap().len(), results.len());
    assert_eq!(
        json["ratios_vs_fjall"].as_array().unwrap().len(),
        results
            .iter()
            .filter(|r| r.engine == EngineKind::Fjall)
            .count()
    );
}

fn parse(args: &[&str]) -> anyhow::Result<Config> {
    let mut argv = vec!["strata-engine-bench"];
    argv.extend_from_slice(args);
    Ok(Cli::try_parse_from(argv)?.into_config()?.0)
}

#[test]
fn defaults_and_refusals() {
    let c = parse(&[]).unwrap();
    assert_eq!(
        c.engines,
        [EngineKind::Fjall, EngineKind::Redb, EngineKind::Lmdb]
    );
    assert_eq!(
        (c.num, c.writes, c.reads, c.value_size_bytes),
        (100_000, 100_000, 100_000, 100)
    );
    assert_eq!(c.batches, [1, 100]);
    assert_eq!(c.syncs, [SyncMode::Off]);

    let c = parse(&[
        "--sync",
        "on,off",
        "--batch",
        "1,1,100",
        "--workloads",
        "overwrite",
    ])
    .unwrap();
    assert_eq!(c.syncs, [SyncMode::On, SyncMode::Off]);
    assert_eq!(c.batches, [1, 100], "duplicates are dropped");

    let err = |args: &[&str]| format!("{:#}", parse(args).unwrap_err());
    assert!(err(&["--engines", "sqlite"]).contains("invalid value"));
    assert!(err(&["--batch", "0"]).contains("--batch"));
    assert!(err(&["--num", "0"]).contains("--num"));
    assert!(err(&["--num", "10", "--writes", "20"]).contains("must not exceed --num"));
    // Overwrite may write more than num (repeats are the point).
    assert!(parse(&["--num", "10", "--writes", "20", "--workloads", "overwrite"]).is_ok());
    assert!(err(&["--value-size", "0"]).contains("--value-size"));
    assert!(err(&["--num", "10000000", "--value-size", "1048576"]).contains("MiB limit"));
    assert!(err(&["--dir", "/nonexistent/engine-bench"]).contains("not an existing directory"));
    if !cfg!(feature = "rocksdb") {
        assert!(err(&["--engines", "rocksdb"]).contains("--features rocksdb"));
    }
}

#[test]
fn repeat_reports_the_median_run_and_its_spread() {
    let mut config = Config::small(200);
    config.workloads = vec![Workload::Fillrandom, Workload::Readrandom];
    config.batches = vec![10];
    config.repeat = 3;
    let results = run_all(&config, |_| {}).unwrap();
    assert_eq!(results.len(), 2 * 3, "one result per case, not per run");
    for r in &results {
        assert_eq!(r.repeats, 3);
        assert!(r.ops_per_s_min <= r.ops_per_s && r.ops_per_s <= r.ops_per_s_max);
    }
    assert!(report::table(&config, &results).contains('%'));
}
