//! Golden encodings of the replicated log format.
//!
//! A `Mutation` (with its `Op`, `Step`s and `Watched` entries) is what a
//! Raft log entry carries, and an `Outcome` is what a retry record keeps,
//! both encoded with postcard, which is not self-describing: a variant is
//! its index, a struct its fields in order. Entries written by an older
//! build must decode to the same mutation and apply the same way, so the
//! bytes below were produced by the build before per-key versions
//! (commit 6cf15d3) and must never change. Append new variants at the end
//! of an enum; never insert, reorder or reshape one. If this test fails,
//! the change breaks every existing log and snapshot.

use bytes::Bytes;
use strata_storage::{
    Embedding, ExpireCondition, GetExChange, Mutation, MutationError, Op, Outcome, SetCondition,
    SetExpiry, Step, VersionCheck, Watched, WatchedVersion,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn hex(raw: &[u8]) -> String {
    raw.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every `Op` variant as it stood before versions, one mutation each.
fn old_ops() -> Vec<Op> {
    vec![
        Op::Set {
            key: b("k"),
            value: b("v"),
            condition: SetCondition::IfAbsent,
            expiry: SetExpiry::At(1_700_000_000_000),
            return_old: true,
        },
        Op::Set {
            key: b("k"),
            value: b(""),
            condition: SetCondition::IfPresent,
            expiry: SetExpiry::Keep,
            return_old: false,
        },
        Op::Set {
            key: b(""),
            value: b("x"),
            condition: SetCondition::Always,
            expiry: SetExpiry::Clear,
            return_old: false,
        },
        Op::MSet {
            pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
            if_none_exist: true,
        },
        Op::Delete {
            keys: vec![b("a"), b("b")],
        },
        Op::GetDel { key: b("g") },
        Op::GetEx {
            key: b("g"),
            change: GetExChange::Persist,
        },
        Op::GetEx {
            key: b("g"),
            change: GetExChange::At(300),
        },
        Op::IncrBy {
            key: b("n"),
            delta: -2,
        },
        Op::IncrByFloat {
            key: b("f"),
            delta: b("1.5"),
        },
        Op::Append {
            key: b("a"),
            value: b("xy"),
        },
        Op::SetRange {
            key: b("r"),
            offset: 200,
            value: b("z"),
        },
        Op::Rename {
            from: b("s"),
            to: b("d"),
            if_absent: true,
        },
        Op::Expire {
            key: b("e"),
            at_ms: -5,
            condition: ExpireCondition::IfHasExpiryAndLess,
        },
        Op::Expire {
            key: b("e"),
            at_ms: 70_000,
            condition: ExpireCondition::IfGreater,
        },
        Op::Persist { key: b("p") },
        Op::FlushAll,
        Op::SweepExpired {
            entries: vec![(b("x"), 129)],
        },
        Op::Exec {
            steps: vec![
                Step::Write(Op::IncrBy {
                    key: b("n"),
                    delta: 1,
                }),
                Step::Read {
                    keys: vec![b("n"), b("m")],
                },
            ],
            watched: vec![
                Watched {
                    key: b("w"),
                    digest: Some([0xab; 32]),
                },
                Watched {
                    key: b("u"),
                    digest: None,
                },
            ],
        },
    ]
}

const OLD_OPS_HEX: &[&str] = &[
    "e80700016b0176010280d095ffbc3101",
    "e90700016b00020100",
    "ea0700000178000000",
    "eb070102016101310162013201",
    "ec07020201610162",
    "ed07030167",
    "ee0704016700",
    "ef0704016701ac02",
    "f00705016e03",
    "f10706016603312e35",
    "f207070161027879",
    "f307080172c801017a",
    "f407090173016401",
    "f5070a01650905",
    "f6070a0165e0c50803",
    "f7070b0170",
    "f8070c",
    "f9070d0101788101",
    "fa070e020005016e020102016e016d02017701abababababababababababababababababababababababababababababababab017500",
];

#[test]
fn old_log_entries_keep_their_encoding() {
    let mut got = Vec::new();
    for (i, op) in old_ops().into_iter().enumerate() {
        let m = Mutation {
            now_ms: 1_000 + i as u64,
            op,
        };
        let raw = m.to_bytes().expect("encode");
        assert_eq!(Mutation::from_bytes(&raw).expect("decode"), m);
        got.push(hex(&raw));
    }
    assert_eq!(got, OLD_OPS_HEX);
}

fn old_outcomes() -> Vec<Outcome> {
    vec![
        Outcome::Ok,
        Outcome::Nil,
        Outcome::Int(-3),
        Outcome::Bulk(b("v")),
        Outcome::Refused(MutationError::NotInteger),
        Outcome::Refused(MutationError::KeyTooLarge { len: 300, max: 200 }),
        Outcome::Refused(MutationError::OutcomeNotKept),
        Outcome::Many(vec![Outcome::Ok, Outcome::Aborted]),
        Outcome::Aborted,
        Outcome::Records(vec![Some((b("v"), 9)), None]),
    ]
}

const OLD_OUTCOMES_HEX: &[&str] = &[
    "00",
    "01",
    "0205",
    "030176",
    "0400",
    "0405ac02c801",
    "0409",
    "05020006",
    "06",
    "07020101760900",
];

#[test]
fn old_retry_records_keep_their_encoding() {
    let got: Vec<String> = old_outcomes()
        .iter()
        .map(|o| {
            let raw = postcard::to_stdvec(o).expect("encode");
            assert_eq!(&postcard::from_bytes::<Outcome>(&raw).expect("decode"), o);
            hex(&raw)
        })
        .collect();
    assert_eq!(got, OLD_OUTCOMES_HEX);
}

/// Variants added since, pinned the same way from the build that added
/// them: `Op::ExecVersioned` (record versions, 2026-12-07).
#[test]
fn later_variants_keep_their_encoding() {
    let m = Mutation {
        now_ms: 2_000,
        op: Op::ExecVersioned {
            steps: vec![
                Step::Write(Op::IncrBy {
                    key: b("n"),
                    delta: 1,
                }),
                Step::Read { keys: vec![b("n")] },
            ],
            watched: vec![
                WatchedVersion {
                    key: b("w"),
                    existed: true,
                    as_of: 300,
                },
                WatchedVersion {
                    key: b("u"),
                    existed: false,
                    as_of: 0,
                },
            ],
        },
    };
    let raw = m.to_bytes().expect("encode");
    assert_eq!(Mutation::from_bytes(&raw).expect("decode"), m);
    assert_eq!(hex(&raw), "d00f0f020005016e020101016e02017701ac0201750000");
}

/// `Op::ExecChecked` and its answers (the HTTP API's compare-and-set and
/// transactions, 2026-12-07), pinned from the build that added them.
#[test]
fn checked_transactions_keep_their_encoding() {
    let m = Mutation {
        now_ms: 2_000,
        op: Op::ExecChecked {
            steps: vec![
                Step::Write(Op::Delete { keys: vec![b("d")] }),
                Step::Read { keys: vec![b("n")] },
            ],
            checks: vec![
                VersionCheck {
                    key: b("c"),
                    version: 300,
                },
                VersionCheck {
                    key: b("z"),
                    version: 0,
                },
            ],
        },
    };
    let raw = m.to_bytes().expect("encode");
    assert_eq!(Mutation::from_bytes(&raw).expect("decode"), m);
    assert_eq!(hex(&raw), "d00f100200020101640101016e020163ac02017a00");
    let outcomes = [
        Outcome::Checked {
            version: 7,
            outcomes: vec![
                Outcome::Int(1),
                Outcome::VersionedRecords(vec![Some((b("v"), 9, 7)), None]),
            ],
        },
        Outcome::CheckFailed {
            check: 1,
            version: 5,
        },
    ];
    let got: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let raw = postcard::to_stdvec(o).expect("encode");
            assert_eq!(&postcard::from_bytes::<Outcome>(&raw).expect("decode"), o);
            hex(&raw)
        })
        .collect();
    assert_eq!(got, ["08070202020a02010176090700", "090105"]);
}

/// The search ops (issue 21, 2026-12-07) and their refusals, pinned from
/// the build that added them.
#[test]
fn search_ops_keep_their_encoding() {
    let ops = [
        Op::CreateIndex {
            definition: b("def"),
        },
        Op::DropIndex { name: "idx".into() },
        Op::BackfillIndex {
            id: 3,
            keys_max: 256,
        },
        Op::PurgeIndex {
            id: 3,
            entries_max: 4096,
        },
        Op::Embedded {
            op: Box::new(Op::Set {
                key: b("k"),
                value: b("v"),
                condition: SetCondition::Always,
                expiry: SetExpiry::Clear,
                return_old: false,
            }),
            embeddings: vec![Embedding {
                key: b("k"),
                index: 1,
                field: 2,
                text_hash: 7,
                vector: vec![1.0, -0.5],
            }],
        },
    ];
    let got: Vec<String> = ops
        .into_iter()
        .map(|op| {
            let m = Mutation { now_ms: 2_000, op };
            let raw = m.to_bytes().expect("encode");
            assert_eq!(Mutation::from_bytes(&raw).expect("decode"), m);
            hex(&raw)
        })
        .collect();
    assert_eq!(got, SEARCH_OPS_HEX);
    let refusals = [
        MutationError::IndexExists,
        MutationError::UnknownIndex,
        MutationError::IndexLimit { max: 64 },
        MutationError::BadIndexDefinition { reason: "x".into() },
        MutationError::TooManyEmbeddings { max: 16_384 },
    ];
    let got: Vec<String> = refusals
        .into_iter()
        .map(|e| {
            let o = Outcome::Refused(e);
            let raw = postcard::to_stdvec(&o).expect("encode");
            assert_eq!(postcard::from_bytes::<Outcome>(&raw).expect("decode"), o);
            hex(&raw)
        })
        .collect();
    assert_eq!(got, SEARCH_REFUSALS_HEX);
}

const SEARCH_OPS_HEX: [&str; 5] = [
    "d00f1103646566",
    "d00f1203696478",
    "d00f13038002",
    "d00f14038020",
    "d00f1500016b017600000001016b010207020000803f000000bf",
];
const SEARCH_REFUSALS_HEX: [&str; 5] = ["040a", "040b", "040c40", "040d0178", "040e808001"];
