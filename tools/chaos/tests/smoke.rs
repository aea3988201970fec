//! A bounded chaos run in CI: `strata-chaos` (this crate) against the
//! server binary (`strata_test_kit::binary::strata_bin`), 3 seeds x 20 s. Each seed starts 3 nodes behind the
//! fault proxy, runs 5 random clients while partitions, delays, message
//! loss, kill -9 and SIGSTOP hit the cluster, heals, and then requires
//! every register/counter history to be linearizable, every acknowledged
//! write to be present, and all replicas to agree.
//!
//! The long mode is the tool itself: `strata-chaos --seeds 200
//! --duration-s 30` (tools/chaos/README.md). A failing seed here replays
//! with `strata-chaos --seed <seed> --duration-s 20`.
//!
//! Env: STRATA_CHAOS_SEEDS (comma-separated, default 1,2,3),
//! STRATA_CHAOS_DURATION_S (default 20).

use std::time::Duration;

use strata_chaos::run::{ChaosConfig, KeepDir, run};
use strata_test_kit::binary::strata_bin;
use strata_test_kit::env_u64;

#[test]
fn chaos_seeds_are_linearizable_and_lose_nothing() {
    let seeds: Vec<u64> = match std::env::var("STRATA_CHAOS_SEEDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| s.trim().parse().expect("STRATA_CHAOS_SEEDS: numbers"))
            .collect(),
        _ => vec![1, 2, 3],
    };
    let duration = Duration::from_secs(env_u64("STRATA_CHAOS_DURATION_S").unwrap_or(20));
    let mut failed = Vec::new();
    for seed in seeds {
        let mut config = ChaosConfig::new(strata_bin(), seed, duration);
        config.keep_dir = KeepDir::OnFailure;
        let report = run(&config).unwrap_or_else(|e| panic!("seed {seed}: run failed: {e:#}"));
        println!("{report}");
        if !report.pass {
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "chaos seeds failed: {failed:?} (reports above; replay with \
         `strata-chaos --seed <seed> --duration-s {}`)",
        duration.as_secs()
    );
}
