//! Runs the torture loop for 3 kill -9 cycles against the real `strata`
//! binary and requires zero lost writes, zero torn batches and no other
//! violation. Small on purpose (about a second on 2 cores); the long runs
//! are `target/release/strata-torture --cycles 100` (tools/torture/README.md).

use std::time::Instant;

use strata_test_kit::binary::strata_bin;
use strata_torture::report::cycle_line;
use strata_torture::{Config, Event, run};

#[test]
fn three_kill9_cycles_lose_nothing() {
    let bin = strata_bin();
    let mut cfg = Config::new(bin, 0x7047_7572_6500_0003);
    cfg.cycles = Some(3);
    cfg.writers = 4;
    // Long enough for writes to be acknowledged even on a loaded CI box.
    cfg.kill_min_ms = 100;
    cfg.kill_max_ms = 250;
    // Every cycle also kills once during recovery, so CI covers that path.
    cfg.recovery_kill_pct = 100;
    // The smallest memtable the server accepts, so flushes can happen too.
    cfg.server_args = vec!["--memtable-size-bytes=1048576".into()];
    cfg.value_bytes_max = 16 * 1024;
    // A search index over every key, checked against DBSIZE after each
    // restart (its entries are in the same batches as the records).
    cfg.search = true;

    let started = Instant::now();
    let summary = run(&cfg, &mut |event| match event {
        Event::Cycle(c) => eprintln!("{}", cycle_line(c)),
        Event::Violation(v) => eprintln!("VIOLATION: {v}"),
        Event::Note(n) => eprintln!("{n}"),
        Event::Started { .. } => {}
    })
    .expect("the torture run could not be set up");
    eprintln!(
        "{} cycles, {} acknowledged writes, {:.1} s",
        summary.cycles,
        summary.acked_total,
        started.elapsed().as_secs_f64()
    );

    assert!(
        summary.passed,
        "violations (replay: {}):\n{:#?}",
        summary.replay, summary.violations
    );
    assert_eq!(
        (summary.lost, summary.torn, summary.other_violations),
        (0, 0, 0)
    );
    assert_eq!(summary.cycles, 3);
    assert_eq!(summary.ready.count, 3, "every restart was timed");
    assert_eq!(summary.recovery_kills, 3);
    // (Any refused write would have been a violation above.)
    assert!(summary.acked_total > 0, "no write was acknowledged");
    assert!(summary.final_keys.is_some(), "the final full check ran");
}
