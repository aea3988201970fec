//! `strata-compare`: benchmarks strata against redis-server and
//! valkey-server side by side.
//!
//! For each durability level (strata `--fsync always|periodic:1000|never`
//! against redis and valkey `appendfsync always|everysec` / `appendonly
//! no`) it starts one server at a time — strata, then each peer — runs the
//! same loads against each (redis-benchmark SET/GET/MSET without and with
//! pipelining, on random keys by default and on one key if asked, labelled
//! so; strata-bench YCSB A–F), stops it by pid, and finally prints a
//! strata ÷ peer table and writes JSON, markdown and SVG charts. A peer can
//! also be a second strata build (`--baseline`), for before/after runs;
//! `--rounds` repeats everything with the order alternating and reports
//! medians.
//!
//! It also draws `bench/data-size.sh`'s chart (`--plot-data-size`,
//! [`data_size`]).
//!
//! The library holds everything testable without redis (parsing, the ratio
//! table, plotting); `main.rs` only wires it to the command line.

pub mod cli;
pub mod data_size;
pub mod model;
pub mod parse;
pub mod plot;
pub mod process;
pub mod report;
pub mod runner;
pub mod table;
