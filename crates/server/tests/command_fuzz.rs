//! Property fuzzing of every command's argument parsing, in process: random
//! argument lists (empty, oversized, non-UTF-8, extreme numbers, option
//! words in the wrong places) for every command of the table, executed
//! against a real store.
//!
//! Properties, for every call:
//! * nothing panics, in parsing or in applying what was parsed;
//! * a mutation that parsing produces never names a key over the key limit
//!   (the check that keeps an oversized key out of the Raft log);
//! * applying it ends as an outcome, never a storage error;
//! * the same for transactions: MULTI, commands queued, EXEC's one
//!   mutation applied and its reply rendered.
//!
//! The end-to-end fuzz over a socket is `tests/bad_input.rs` of the
//! `strata` crate; this one reaches far more calls per second.

use bytes::Bytes;
use proptest::prelude::*;
use strata_server::cmd::{self, Action, Ctx, TABLE};
use strata_server::config::{ConfigLayer, ServerConfig};
use strata_server::shared::{Session, Shared};
use strata_server::write_path::Writes;
use strata_storage::LocalStore;

const KEY_BYTES_MAX: usize = 64;
const VALUE_BYTES_MAX: usize = 1024;

fn arg() -> impl Strategy<Value = Bytes> {
    let words = prop::sample::select(vec![
        "a",
        "b",
        "",
        " ",
        "0",
        "1",
        "-1",
        "100",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "1.5",
        "inf",
        "-inf",
        "nan",
        "1e400",
        "NX",
        "XX",
        "GT",
        "LT",
        "EX",
        "PX",
        "EXAT",
        "PXAT",
        "KEEPTTL",
        "GET",
        "PERSIST",
        "MATCH",
        "COUNT",
        "LIMIT",
        "TYPE",
        "*",
        "a*",
        "[",
        "\\",
        "SETNAME",
        "GETNAME",
        "ID",
        "KILL",
        "LIST",
        "INFO",
        "HELP",
        "DOCS",
        "GETKEYS",
        "server",
        "keyspace",
        "replication",
        "all",
        "3",
        "2",
        "AUTH",
        "RESETSTAT",
        "maxmemory",
        "STATUS",
        "NODES",
    ]);
    prop_oneof![
        6 => words.prop_map(|w| Bytes::from(w.as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        1 => prop::sample::select(vec![KEY_BYTES_MAX + 1, VALUE_BYTES_MAX + 1, 70_000])
            .prop_map(|n| Bytes::from(vec![b'k'; n])),
    ]
}

fn call() -> impl Strategy<Value = Vec<Bytes>> {
    (0..TABLE.len(), prop::collection::vec(arg(), 0..7)).prop_map(|(i, mut args)| {
        args.insert(0, Bytes::from(TABLE[i].name.as_bytes()));
        args
    })
}

/// Random calls, with MULTI and EXEC (without arguments) often enough
/// that transactions of random commands are applied.
fn call_or_transaction() -> impl Strategy<Value = Vec<Bytes>> {
    let word = |w: &'static str| vec![Bytes::from_static(w.as_bytes())];
    prop_oneof![
        12 => call(),
        1 => Just(word("MULTI")),
        1 => Just(word("EXEC")),
    ]
}

fn shared(dir: &std::path::Path) -> Shared {
    let layer = ConfigLayer {
        data_dir: Some(dir.to_path_buf()),
        fsync: Some("never".into()),
        key_size_bytes_max: Some(KEY_BYTES_MAX),
        value_size_bytes_max: Some(VALUE_BYTES_MAX),
        ..ConfigLayer::default()
    };
    let config = ServerConfig::resolve(layer).expect("config");
    let local = LocalStore::open(config.storage.clone()).expect("store");
    Shared::new(local.reader(), Writes::Local(local), config)
}

/// Cases per run: 64 in `cargo test`; `STRATA_FUZZ_CASES=N` for a
/// longer run (README, "Fuzzing").
fn cases() -> u32 {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn any_arguments_to_any_command_parse_and_apply_without_panic(
        calls in prop::collection::vec(call_or_transaction(), 1..64),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let mut session = Session::new(1, "fuzz".into());
        let mut pending = shared.write_path.pending();
        for args in calls {
            let spec = cmd::lookup(&args[0]).expect("every table name is found");
            // Inside MULTI, commands are queued as the connection does;
            // EXEC then parses them all and applies one mutation.
            if let Some(tx) = session.tx.as_mut()
                && !cmd::tx::runs_in_multi(spec)
            {
                let _ = cmd::tx::queue(tx, Some(spec), &args, 1 << 20);
                continue;
            }
            let mut ctx = Ctx { shared: &shared, session: &mut session, now_ms: 1_000_000 };
            let (mutation, replies) = match cmd::execute(spec, &mut ctx, &args) {
                Action::Write(mutation) => {
                    // Only a write may build a mutation: a read would
                    // skip the barrier's place in the pipeline.
                    prop_assert_eq!(spec.kind, cmd::Kind::Write, "{} built a mutation", spec.name);
                    (mutation, None)
                }
                Action::Exec(plan) => (plan.mutation, Some(plan.replies)),
                _ => continue,
            };
            mutation.op.try_for_each_key(|k| {
                prop_assert!(k.len() <= KEY_BYTES_MAX, "{} parsed a {}-byte key", spec.name, k.len());
                Ok(())
            })?;
            let outcome = rt.block_on(shared.write_path.write(&mut pending, mutation));
            prop_assert!(outcome.is_ok(), "{}: {:?}", spec.name, outcome);
            if let (Some(replies), Ok(outcome)) = (replies, outcome) {
                // Rendering EXEC's reply must not panic either.
                let _ = cmd::tx::exec_reply(replies, Ok(outcome));
            }
        }
    }
}
