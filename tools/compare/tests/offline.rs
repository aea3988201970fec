//! Everything strata-compare does that needs neither redis nor a network:
//! parsing both tools' output from fixtures, the ratio table, and the
//! SVG/markdown/JSON files, and `--replot` of a file written before Valkey
//! and random keys existed. Runs in about a second.

use std::time::UNIX_EPOCH;

use strata_compare::cli::Plan;
use strata_compare::model::{
    KeyMode, Level, LoadKind, Measurement, Server, redis_benchmark_test_name,
};
use strata_compare::parse::{parse_redis_benchmark_csv, parse_strata_bench_json};
use strata_compare::plot::{Metric, plot_level};
use strata_compare::process::parse_ready_line;
use strata_compare::report::{RunInfo, read_saved, utc_timestamp, write_all};
use strata_compare::table::{geomean_ratio, ratio_rows, render_markdown, render_text};

/// Real `redis-benchmark 7.0.15 -t set,get,mset -c 50 -n 2000 --csv` output.
const REDIS_BENCHMARK_CSV: &str = r#""test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","31250.00","1.182","0.152","0.735","2.471","15.647","15.887"
"GET","26666.67","1.339","0.040","0.887","4.119","5.095","6.351"
"MSET (10 keys)","21052.63","1.685","0.056","0.975","5.703","15.247","15.607"
"#;

/// Real `strata-bench --format json` output (ycsb-a against redis).
const STRATA_BENCH_JSON: &str = r#"{"label":"redis-always","target":"127.0.0.1:6399","workload":"ycsb-a","distribution":"zipfian","zipf_theta":0.99,"connections":4,"pipeline":1,"keyspace":1000,"value_size_bytes":100,"batch":null,"scan_length":null,"seed":17780180462389947654,"warmup_s":0.0,"duration_s":1.0,"load":{"keys":1000,"errors":0,"duration_s":0.005,"keys_per_s":185227.4},"ops":20277,"errors":0,"ops_per_s":20269.7,"latency_us":{"p50":135,"p90":290,"p99":975,"p999":7375,"max":29471,"mean":195.2},"by_op":[{"op":"read","ops":10133,"errors":0,"ops_per_s":10129.4,"latency_us":{"p50":136,"p90":293,"p99":915,"p999":7255,"max":29343,"mean":194.1}},{"op":"update","ops":10144,"errors":0,"ops_per_s":10140.3,"latency_us":{"p50":134,"p90":287,"p99":1155,"p999":8319,"max":29471,"mean":196.2}}],"failed_connections":0}
"#;

#[test]
fn redis_benchmark_csv_is_parsed_with_latencies_in_us() {
    let rows = parse_redis_benchmark_csv(REDIS_BENCHMARK_CSV).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].test, "SET");
    assert_eq!(rows[0].ops_per_s, 31250.0);
    assert_eq!(rows[0].p50_latency_us, Some(735.0));
    assert!((rows[0].p99_latency_us.unwrap() - 15647.0).abs() < 1e-6);
    assert_eq!(rows[2].test, "MSET (10 keys)");
    let name = |p, k| redis_benchmark_test_name(&rows[2].test, p, k);
    assert_eq!(name(1, KeyMode::Random), "mset");
    assert_eq!(name(16, KeyMode::Random), "mset -P16");
    assert_eq!(name(16, KeyMode::Single), "mset -P16 (single key)");
}

#[test]
fn old_headerless_csv_and_noise_are_handled() {
    // redis-benchmark before 6.0: no header, no latencies; plus a stray
    // progress fragment and a warning.
    let text = "SET: 123.0\r\"SET\",\"1000.50\"\nWARNING: something\n\"GET\",\"2000\"\n";
    let rows = parse_redis_benchmark_csv(text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].test.as_str(), rows[0].ops_per_s), ("SET", 1000.5));
    assert_eq!(rows[1].p99_latency_us, None);
    assert!(parse_redis_benchmark_csv("").is_err());
    // A test faster than redis-benchmark's 1 ms clock is kept, not lost.
    let inf = "\"test\",\"rps\",\"p50_latency_ms\"\n\"GET\",\"inf\",\"0.031\"\n";
    let rows = parse_redis_benchmark_csv(inf).unwrap();
    assert_eq!(rows[0].ops_per_s, f64::INFINITY);
    assert_eq!(rows[0].p50_latency_us, Some(31.0));
    assert!(parse_redis_benchmark_csv("Could not connect to Redis\n").is_err());
}

#[test]
fn strata_bench_json_is_parsed() {
    // A log line before the report must not matter.
    let text = format!("loading...\n{STRATA_BENCH_JSON}");
    let run = parse_strata_bench_json(&text).unwrap();
    assert_eq!(run.workload, "ycsb-a");
    assert_eq!(run.ops, 20277);
    assert_eq!(run.ops_per_s, 20269.7);
    assert_eq!(run.p50_latency_us, Some(135.0));
    assert_eq!(run.p99_latency_us, Some(975.0));
    assert_eq!((run.errors, run.failed_connections), (0, 0));
    // Nothing measured: the zero latencies mean "unknown".
    let empty = r#"{"workload":"ycsb-c","ops":0,"errors":0,"ops_per_s":0.0,"latency_us":{"p50":0,"p99":0},"failed_connections":2}"#;
    let run = parse_strata_bench_json(empty).unwrap();
    assert_eq!(run.p99_latency_us, None);
    assert_eq!(run.failed_connections, 2);
    assert!(parse_strata_bench_json("error: connection refused\n").is_err());
}

#[test]
fn ready_line_gives_the_resp_address() {
    let addr = parse_ready_line("ready resp=127.0.0.1:40123 text=off").unwrap();
    assert_eq!(addr.to_string(), "127.0.0.1:40123");
    assert!(parse_ready_line("ready text=off").is_err());
}

fn measured(level: Level, server: Server, test: &str, ops_per_s: f64, p99_ms: f64) -> Measurement {
    Measurement {
        level,
        server,
        test: test.into(),
        tool: "fixture".into(),
        ops_per_s: Some(ops_per_s),
        p50_latency_us: Some(p99_ms * 500.0),
        p99_latency_us: Some(p99_ms * 1000.0),
        note: None,
        round: 1,
    }
}

/// Two levels, with a test redis and valkey cannot run and one that
/// failed; valkey at one level only.
fn sample() -> Vec<Measurement> {
    use Level::*;
    use Server::*;
    vec![
        measured(Always, Strata, "set", 4000.0, 20.0),
        measured(Always, Strata, "ycsb-e", 9000.0, 8.0),
        measured(Always, Redis, "set", 2000.0, 40.0),
        Measurement::missing(
            Always,
            Redis,
            "ycsb-e",
            "strata-bench",
            "n/a: redis has no RANGE",
        ),
        measured(Never, Strata, "set", 50_000.0, 1.5),
        Measurement::missing(
            Never,
            Strata,
            "ycsb-e",
            "strata-bench",
            "timed out after 70 s",
        ),
        measured(Never, Redis, "set", 100_000.0, 0.9),
        measured(Always, Valkey, "set", 8000.0, 10.0),
        Measurement::missing(
            Always,
            Valkey,
            "ycsb-e",
            "strata-bench",
            "n/a: valkey has no RANGE",
        ),
    ]
}

#[test]
fn ratio_table_pairs_strata_with_redis() {
    let rows = ratio_rows(&sample());
    let tests: Vec<(Level, &str)> = rows.iter().map(|r| (r.level, r.test.as_str())).collect();
    assert_eq!(
        tests,
        vec![
            (Level::Always, "set"),
            (Level::Always, "ycsb-e"),
            (Level::Never, "set"),
            (Level::Never, "ycsb-e"),
        ]
    );
    assert_eq!(rows[0].ratio(Server::Redis), Some(2.0));
    assert_eq!(rows[0].ratio(Server::Valkey), Some(0.5));
    assert_eq!(rows[1].ratio(Server::Redis), None);
    assert_eq!(rows[2].ratio(Server::Redis), Some(0.5));
    // Redis never ran ycsb-e at level never, valkey nothing: empty, noted cells.
    let not_run = |r: usize, s: Server| rows[r].peer(s).unwrap().cell.note.clone();
    assert_eq!(not_run(3, Server::Redis).as_deref(), Some("not run"));
    assert_eq!(not_run(2, Server::Valkey).as_deref(), Some("not run"));
    assert_eq!(
        geomean_ratio(&rows, Level::Always, Server::Redis),
        Some((2.0, 1))
    );
    assert_eq!(
        geomean_ratio(&rows, Level::Always, Server::Valkey),
        Some((0.5, 1))
    );
    assert_eq!(geomean_ratio(&rows, Level::Never, Server::Valkey), None);
    assert_eq!(geomean_ratio(&rows, Level::Periodic, Server::Redis), None);

    let text = render_text(&rows);
    assert!(text.contains("strata÷redis"), "{text}");
    assert!(text.contains("strata÷valkey"), "{text}");
    assert!(text.contains("n/a: valkey has no RANGE"), "{text}");
    assert!(text.contains("2.00") && text.contains("0.50"), "{text}");
    assert!(text.contains("n/a: redis has no RANGE"), "{text}");
    assert!(text.contains("20.000"), "p99 in ms: {text}");
    let md = render_markdown(&rows, "### fixture\n\n");
    assert!(md.starts_with("### fixture\n\n| level | test |"), "{md}");
    assert!(
        md.contains("| always | set | 4000 | 2000 | **2.00** | 8000 | **0.50** |"),
        "{md}"
    );
    assert!(
        md.contains("| always | ycsb-e | 9000 | n/a | n/a | n/a | n/a |"),
        "{md}"
    );
}

#[test]
fn charts_and_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ratio_rows(&sample());
    let svg = dir.path().join("always-throughput.svg");
    plot_level(&rows, Level::Always, Metric::Throughput, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "not an SVG: {text:.200}");
    assert!(text.contains("ycsb-e") && text.contains("n/a"));
    // One bar series per server, each in the legend and in its colour.
    for (server, color) in [
        ("strata", "#1F77B4"),
        ("redis", "#D62728"),
        ("valkey", "#2CA02C"),
    ] {
        assert!(
            text.contains(&format!("\n{server}\n")),
            "no {server} in the legend"
        );
        assert!(text.contains(color), "no {server} bars");
    }
    // No results at a level is an error, not an empty chart.
    assert!(plot_level(&rows, Level::Periodic, Metric::P99Latency, &svg).is_err());

    let info = RunInfo {
        timestamp_utc: utc_timestamp(UNIX_EPOCH),
        command: "bench/compare --quick".into(),
        cpus: 2,
        os: "linux".into(),
        strata_version: "strata 0.1.0".into(),
        redis_server_version: "Redis server v=7".into(),
        redis_benchmark_version: "redis-benchmark 7".into(),
        valkey_server_version: Some("Valkey server v=8.1.8 sha=00000000:1".into()),
        baseline: None,
        skipped: Vec::new(),
        plan: Plan {
            levels: vec![Level::Always, Level::Never],
            requests: 10,
            duration_s: 1.0,
            warmup_s: 0.0,
            keyspace: 10,
            connections: 1,
            bench_threads: 1,
            peers: vec![Server::Redis, Server::Valkey],
            key_modes: vec![KeyMode::Random],
            random_keys: 100,
            loads: vec![LoadKind::RedisBenchmark, LoadKind::Ycsb],
            rounds: 1,
        },
        elapsed_s: 1.0,
    };
    let out = dir.path().join("results");
    let written = write_all(&out, &info, &sample(), &rows).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "compare-19700101-000000.json",
            "compare-19700101-000000.md",
            "compare-19700101-000000-always-throughput.svg",
            "compare-19700101-000000-always-p99.svg",
            "compare-19700101-000000-never-throughput.svg",
            "compare-19700101-000000-never-p99.svg",
        ]
    );
    for p in &written {
        let text = std::fs::read_to_string(p).unwrap();
        if p.extension().unwrap() == "svg" {
            assert!(text.contains("<svg"), "{}", p.display());
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written[0]).unwrap()).unwrap();
    assert_eq!(json["measurements"].as_array().unwrap().len(), 9);
    let peers = &json["ratios"][0]["peers"];
    assert_eq!(peers[0]["server"], "redis");
    assert_eq!(peers[0]["throughput_ratio"], 2.0);
    assert_eq!(peers[1]["server"], "valkey");
    assert_eq!(peers[1]["throughput_ratio"], 0.5);
    assert_eq!(peers[1]["ops_per_s"], 8000.0);
    assert_eq!(json["run"]["plan"]["levels"][1], "never");
    assert_eq!(json["run"]["plan"]["key_modes"][0], "random");
    let md = std::fs::read_to_string(&written[1]).unwrap();
    assert!(md.starts_with("### strata vs redis and valkey, "), "{md}");
    assert!(
        md.contains("Redis server v=7; Valkey server v=8.1.8.") && md.contains("`-r 100`"),
        "{md}"
    );
    // What --replot reads back is what was written: nothing relabelled.
    let saved = read_saved(&written[0]).unwrap();
    assert_eq!(saved.measurements, sample());
    assert_eq!(saved.run.plan, info.plan);
    assert_eq!(saved.run.valkey_server_version, info.valkey_server_version);
}

/// A real `compare-<ts>.json` from before Valkey, random keys and rounds.
const LEGACY_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../bench/results/compare-20261123-234923.json"
);

#[test]
fn replot_reads_files_from_before_valkey_and_random_keys() {
    let saved = read_saved(std::path::Path::new(LEGACY_JSON)).unwrap();
    // The missing fields default to what that run did.
    assert_eq!(saved.run.plan.peers, vec![Server::Redis]);
    assert_eq!(saved.run.plan.key_modes, vec![KeyMode::Single]);
    assert_eq!(saved.run.plan.rounds, 1);
    assert_eq!(saved.run.valkey_server_version, None);
    // Its redis-benchmark rows hammered one key: they say so now.
    let tests: Vec<&str> = saved.measurements.iter().map(|m| m.test.as_str()).collect();
    assert!(tests.contains(&"set (single key)"), "{tests:?}");
    assert!(tests.contains(&"get -P16 (single key)"), "{tests:?}");
    assert!(tests.contains(&"ycsb-a"), "{tests:?}");

    // And the binary redraws it: table, markdown, single-key charts.
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_strata-compare"))
        .args(["--replot", LEGACY_JSON, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("set (single key)") && stdout.contains("strata÷redis"),
        "{stdout}"
    );
    assert!(!stdout.contains("valkey"), "{stdout}");
    let always_set = stdout
        .lines()
        .find(|l| l.starts_with("always") && l.contains("set (single key)"))
        .unwrap();
    // 115141 / 104657.59 in that run's file.
    assert!(always_set.contains("1.10"), "{always_set}");
    for name in [
        "compare-20261123-234923.md",
        "compare-20261123-234923-always-throughput.svg",
        "compare-20261123-234923-always-single-key-throughput.svg",
        "compare-20261123-234923-never-single-key-p99.svg",
    ] {
        assert!(out.path().join(name).is_file(), "{name} not written");
    }
    let md = std::fs::read_to_string(out.path().join("compare-20261123-234923.md")).unwrap();
    assert!(md.contains("on one key (rows marked (single key))"), "{md}");
}
