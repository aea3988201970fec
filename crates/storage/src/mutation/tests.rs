//! Tests of the state machine alone, against an in-memory `State`.

use super::*;
use std::collections::BTreeMap;

/// A mutation that is `levels` transactions, each the one step of the
/// one around it, as postcard bytes: the shape of the input that made
/// the `disk_records` fuzz target overflow the stack (5,000 levels).
fn nested_exec_bytes(levels: usize) -> Vec<u8> {
    // now_ms 1; per level Op::Exec (variant 14), one step, Step::Write
    // (variant 0); the innermost Exec without steps; no watched keys.
    let mut raw = vec![1u8];
    for _ in 0..levels - 1 {
        raw.extend_from_slice(&[14, 1, 0]);
    }
    raw.extend_from_slice(&[14, 0, 0]);
    raw.extend(std::iter::repeat_n(0u8, levels - 1));
    raw
}

fn nested_exec(levels: usize) -> Mutation {
    let mut op = Op::Exec {
        steps: vec![],
        watched: vec![],
    };
    for _ in 1..levels {
        op = Op::Exec {
            steps: vec![Step::Write(op)],
            watched: vec![],
        };
    }
    Mutation { now_ms: 1, op }
}

#[test]
fn deeply_nested_transactions_are_refused_not_a_stack_overflow() {
    let max = DECODE_NESTING_LEVELS_MAX;
    for levels in [max + 1, 5_000, 100_000] {
        let err = Mutation::from_bytes(&nested_exec_bytes(levels)).unwrap_err();
        // The nesting refusal, not some other decoding error.
        assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
    }
    // Up to the limit, the bytes are exactly the value's encoding.
    for levels in [1, 2, max] {
        let raw = nested_exec_bytes(levels);
        assert_eq!(Mutation::from_bytes(&raw).unwrap(), nested_exec(levels));
        assert_eq!(nested_exec(levels).to_bytes().unwrap(), raw);
    }
    // A refusal leaves no count behind: the next decode starts at 0.
    assert!(Mutation::from_bytes(&nested_exec_bytes(max)).is_ok());
}

#[test]
fn deeply_nested_versioned_transactions_are_refused_not_a_stack_overflow() {
    // As `nested_exec_bytes`, with Op::ExecVersioned (variant 15).
    let nested = |levels: usize| {
        let mut raw = vec![1u8];
        for _ in 0..levels - 1 {
            raw.extend_from_slice(&[15, 1, 0]);
        }
        raw.extend_from_slice(&[15, 0, 0]);
        raw.extend(std::iter::repeat_n(0u8, levels - 1));
        raw
    };
    let max = DECODE_NESTING_LEVELS_MAX;
    for levels in [max + 1, 5_000, 100_000] {
        let err = Mutation::from_bytes(&nested(levels)).unwrap_err();
        assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
    }
    let mut op = Op::ExecVersioned {
        steps: vec![],
        watched: vec![],
    };
    for _ in 1..max {
        op = Op::ExecVersioned {
            steps: vec![Step::Write(op)],
            watched: vec![],
        };
    }
    let want = Mutation { now_ms: 1, op };
    assert_eq!(Mutation::from_bytes(&nested(max)).unwrap(), want);
}

#[test]
fn deeply_nested_answers_are_refused_not_a_stack_overflow() {
    let nested = |levels: usize| {
        // Outcome::Many (variant 5) of one answer, down to an empty one.
        let mut raw = [5u8, 1].repeat(levels - 1);
        raw.extend_from_slice(&[5, 0]);
        raw
    };
    let max = DECODE_NESTING_LEVELS_MAX;
    for levels in [max + 1, 100_000] {
        let err = postcard::from_bytes::<Outcome>(&nested(levels)).unwrap_err();
        assert_eq!(err, postcard::Error::SerdeDeCustom, "{levels}");
    }
    let mut want = Outcome::Many(vec![]);
    for _ in 1..max {
        want = Outcome::Many(vec![want]);
    }
    assert_eq!(postcard::from_bytes::<Outcome>(&nested(max)).unwrap(), want);
}

/// The simplest possible state: a map, the last version stamped, and
/// the highest version deleted. Used to test `apply` alone.
#[derive(Default)]
struct MapState(BTreeMap<Bytes, Record>, u64, u64);

impl State for MapState {
    fn load(&mut self, key: &Bytes) -> crate::Result<Option<Record>> {
        Ok(self.0.get(key).cloned())
    }
    fn put(&mut self, key: Bytes, record: Record) -> crate::Result<()> {
        self.1 += 1;
        self.0.insert(key, record.with_version(self.1));
        Ok(())
    }
    fn delete(&mut self, key: &Bytes) -> crate::Result<()> {
        if let Some(old) = self.0.remove(key) {
            self.2 = self.2.max(old.version);
        }
        Ok(())
    }
    fn clear(&mut self) -> crate::Result<()> {
        self.2 = self.1;
        self.0.clear();
        Ok(())
    }
    fn deleted_max(&self) -> u64 {
        self.2
    }
    /// This state stamps each put anew: the last one stamped.
    fn version(&self) -> u64 {
        self.1
    }
}

const LIMITS: Limits = Limits {
    key_size_bytes_max: 16,
    value_size_bytes_max: 32,
};

fn run(s: &mut MapState, now_ms: u64, op: Op) -> Outcome {
    apply(s, &Mutation { now_ms, op }, &LIMITS).unwrap()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: b(key),
        value: b(value),
        condition: SetCondition::Always,
        expiry: SetExpiry::Clear,
        return_old: false,
    }
}

#[test]
fn parse_i64_is_strict() {
    assert_eq!(parse_i64(b"0"), Some(0));
    assert_eq!(parse_i64(b"-12"), Some(-12));
    assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"+1",
        b" 1",
        b"1 ",
        b"01",
        b"-0",
        b"1.0",
        b"9223372036854775808",
        b"abc",
    ] {
        assert_eq!(parse_i64(bad), None, "{bad:?}");
    }
}

#[test]
fn decimal_sums_like_redis() {
    let add = |a: &str, b: &str| add_decimal_text(a.as_bytes(), b.as_bytes());
    assert_eq!(add("0.1", "0.2").unwrap(), "0.3");
    assert_eq!(add("1.1", "2.2").unwrap(), "3.3");
    assert_eq!(add("10", "-10").unwrap(), "0");
    assert_eq!(add("5.0e3", "2.0e2").unwrap(), "5200");
    assert_eq!(add("1e300", "1").unwrap(), format_f64(1e300));
    assert_eq!(add("abc", "1"), Err(MutationError::NotFloat));
    assert_eq!(add("1", "nan"), Err(MutationError::NotFloat));
    assert_eq!(add("1", "-inf"), Err(MutationError::NanOrInfinity));
    assert_eq!(
        add("1.7976931348623157e308", "1.7976931348623157e308"),
        Err(MutationError::NanOrInfinity)
    );
}

#[test]
fn float_formatting() {
    assert_eq!(format_f64(10.5 + 0.1), "10.6");
    assert_eq!(format_f64(3.0), "3");
    assert_eq!(format_f64(-0.0), "0");
    assert_eq!(format_f64(5.0e3), "5000");
}

#[test]
fn set_conditions_and_get() {
    let mut s = MapState::default();
    let nx = |v: &str| Op::Set {
        key: b("k"),
        value: b(v),
        condition: SetCondition::IfAbsent,
        expiry: SetExpiry::Clear,
        return_old: false,
    };
    assert_eq!(run(&mut s, 1, nx("a")), Outcome::Ok);
    assert_eq!(run(&mut s, 1, nx("b")), Outcome::Nil);
    let get = Op::Set {
        key: b("k"),
        value: b("c"),
        condition: SetCondition::IfPresent,
        expiry: SetExpiry::Clear,
        return_old: true,
    };
    assert_eq!(run(&mut s, 1, get), Outcome::Bulk(b("a")));
    assert_eq!(s.0[&b("k")].value, b("c"));
}

#[test]
fn expiry_is_decided_by_the_mutation_clock() {
    let mut s = MapState::default();
    let op = Op::Set {
        key: b("k"),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(100),
        return_old: false,
    };
    assert_eq!(run(&mut s, 50, op), Outcome::Ok);
    // At t=99 the key is live, at t=100 it is gone for every mutation.
    assert_eq!(
        run(
            &mut s,
            99,
            Op::IncrBy {
                key: b("x"),
                delta: 0
            }
        ),
        Outcome::Int(0)
    );
    let nx = Op::Set {
        key: b("k"),
        value: b("new"),
        condition: SetCondition::IfAbsent,
        expiry: SetExpiry::Clear,
        return_old: false,
    };
    assert_eq!(run(&mut s, 99, nx.clone()), Outcome::Nil);
    assert_eq!(run(&mut s, 100, nx), Outcome::Ok);
    // A SET whose expiry already passed leaves no key.
    let past = Op::Set {
        key: b("p"),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(10),
        return_old: false,
    };
    assert_eq!(run(&mut s, 50, past), Outcome::Ok);
    assert!(!s.0.contains_key(&b("p")));
}

#[test]
fn mset_is_all_or_nothing_on_limits() {
    let mut s = MapState::default();
    let op = Op::MSet {
        pairs: vec![(b("a"), b("1")), (b("b"), Bytes::from(vec![0u8; 33]))],
        if_none_exist: false,
    };
    assert!(matches!(
        run(&mut s, 1, op),
        Outcome::Refused(MutationError::ValueTooLarge { .. })
    ));
    assert!(s.0.is_empty());
    run(&mut s, 1, set("a", "1"));
    let nx = Op::MSet {
        pairs: vec![(b("z"), b("1")), (b("a"), b("2"))],
        if_none_exist: true,
    };
    assert_eq!(run(&mut s, 1, nx), Outcome::Int(0));
    assert!(!s.0.contains_key(&b("z")));
}

#[test]
fn incr_errors_change_nothing() {
    let mut s = MapState::default();
    run(&mut s, 1, set("n", "9223372036854775807"));
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrBy {
                key: b("n"),
                delta: 1
            }
        ),
        Outcome::Refused(MutationError::Overflow)
    );
    run(&mut s, 1, set("t", "abc"));
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrBy {
                key: b("t"),
                delta: 1
            }
        ),
        Outcome::Refused(MutationError::NotInteger)
    );
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrByFloat {
                key: b("t"),
                delta: b("1.0")
            }
        ),
        Outcome::Refused(MutationError::NotFloat)
    );
    assert_eq!(s.0[&b("t")].value, b("abc"));
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrByFloat {
                key: b("f"),
                delta: b("10.5")
            }
        ),
        Outcome::Bulk(b("10.5"))
    );
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrByFloat {
                key: b("f"),
                delta: b("0.1")
            }
        ),
        Outcome::Bulk(b("10.6"))
    );
    assert_eq!(
        run(
            &mut s,
            1,
            Op::IncrByFloat {
                key: b("f"),
                delta: b("inf")
            }
        ),
        Outcome::Refused(MutationError::NanOrInfinity)
    );
}

#[test]
fn setrange_and_append_respect_value_limit() {
    let mut s = MapState::default();
    assert_eq!(
        run(
            &mut s,
            1,
            Op::SetRange {
                key: b("k"),
                offset: 2,
                value: b("ab")
            }
        ),
        Outcome::Int(4)
    );
    assert_eq!(s.0[&b("k")].value, Bytes::from_static(b"\0\0ab"));
    assert!(matches!(
        run(
            &mut s,
            1,
            Op::SetRange {
                key: b("k"),
                offset: 31,
                value: b("ab")
            }
        ),
        Outcome::Refused(MutationError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        run(
            &mut s,
            1,
            Op::Append {
                key: b("k"),
                value: Bytes::from(vec![1u8; 29])
            }
        ),
        Outcome::Refused(MutationError::ValueTooLarge { .. })
    ));
    assert_eq!(s.0[&b("k")].value.len(), 4);
}

#[test]
fn expire_conditions() {
    let mut s = MapState::default();
    run(&mut s, 1, set("k", "v"));
    let exp = |at: i64, condition| Op::Expire {
        key: b("k"),
        at_ms: at,
        condition,
    };
    assert_eq!(
        run(&mut s, 1, exp(1000, ExpireCondition::IfHasExpiry)),
        Outcome::Int(0)
    );
    assert_eq!(
        run(&mut s, 1, exp(1000, ExpireCondition::IfGreater)),
        Outcome::Int(0)
    );
    assert_eq!(
        run(&mut s, 1, exp(1000, ExpireCondition::IfLess)),
        Outcome::Int(1)
    );
    assert_eq!(
        run(&mut s, 1, exp(2000, ExpireCondition::IfNoExpiry)),
        Outcome::Int(0)
    );
    assert_eq!(
        run(&mut s, 1, exp(2000, ExpireCondition::IfGreater)),
        Outcome::Int(1)
    );
    assert_eq!(s.0[&b("k")].expire_at_ms, 2000);
    assert_eq!(run(&mut s, 1, Op::Persist { key: b("k") }), Outcome::Int(1));
    assert_eq!(
        run(&mut s, 1, exp(-5, ExpireCondition::Always)),
        Outcome::Int(1)
    );
    assert!(s.0.is_empty());
}

fn exec(steps: Vec<Step>, watched: Vec<Watched>) -> Op {
    Op::Exec { steps, watched }
}

#[test]
fn exec_applies_steps_in_order_and_reads_its_writes() {
    let mut s = MapState::default();
    run(&mut s, 1, set("t", "abc"));
    let op = exec(
        vec![
            Step::Write(set("a", "1")),
            Step::Write(Op::IncrBy {
                key: b("a"),
                delta: 2,
            }),
            Step::Write(Op::IncrBy {
                key: b("t"),
                delta: 1,
            }),
            Step::Read {
                keys: vec![b("a"), b("missing")],
            },
        ],
        vec![],
    );
    assert_eq!(
        run(&mut s, 1, op),
        Outcome::Many(vec![
            Outcome::Ok,
            Outcome::Int(3),
            Outcome::Refused(MutationError::NotInteger),
            Outcome::Records(vec![Some((b("3"), 0)), None]),
        ])
    );
    assert_eq!(s.0[&b("t")].value, b("abc"));
}

#[test]
fn exec_reads_answer_at_most_their_byte_bound() {
    let mut s = MapState::default();
    let big = Bytes::from(vec![b'v'; EXEC_READ_BYTES_MAX / 2 + 1]);
    s.0.insert(b("big"), Record::new(big.clone(), 0));
    let read = || Step::Read {
        keys: vec![b("big")],
    };
    let op = exec(vec![read(), Step::Write(set("a", "1")), read()], vec![]);
    assert_eq!(
        run(&mut s, 1, op),
        Outcome::Many(vec![
            Outcome::Records(vec![Some((big, 0))]),
            Outcome::Ok,
            Outcome::Refused(MutationError::ReadResultTooLarge {
                max: EXEC_READ_BYTES_MAX
            }),
        ])
    );
    assert_eq!(s.0[&b("a")].value, b("1"), "the writes still apply");
}

#[test]
fn exec_aborts_whole_when_a_watched_record_changed() {
    let mut s = MapState::default();
    run(&mut s, 1, set("w", "v"));
    let then = record_digest(s.0.get(&b("w")));
    let watched = vec![
        Watched {
            key: b("w"),
            digest: then,
        },
        Watched {
            key: b("absent"),
            digest: None,
        },
    ];
    let op = exec(vec![Step::Write(set("x", "1"))], watched.clone());
    // Unchanged: applied.
    assert_eq!(run(&mut s, 1, op.clone()), Outcome::Many(vec![Outcome::Ok]));
    // A new value, a new expiry, a deletion, expiry itself, or a
    // created key: aborted, nothing applied.
    let changes = [
        set("w", "v2"),
        Op::Expire {
            key: b("w"),
            at_ms: 1000,
            condition: ExpireCondition::Always,
        },
        Op::Delete { keys: vec![b("w")] },
        set("absent", "now"),
    ];
    for change in changes {
        let mut s = MapState::default();
        run(&mut s, 1, set("w", "v"));
        run(&mut s, 1, change.clone());
        let op = exec(vec![Step::Write(set("x", "1"))], watched.clone());
        assert_eq!(run(&mut s, 1, op), Outcome::Aborted, "{change:?}");
        assert!(!s.0.contains_key(&b("x")), "{change:?}");
    }
    let mut s = MapState::default();
    run(
        &mut s,
        1,
        Op::Set {
            key: b("w"),
            value: b("v"),
            condition: SetCondition::Always,
            expiry: SetExpiry::At(50),
            return_old: false,
        },
    );
    let watched = vec![Watched {
        key: b("w"),
        digest: record_digest(s.0.get(&b("w"))),
    }];
    let op = exec(vec![Step::Write(set("x", "1"))], watched);
    assert_eq!(
        run(&mut s, 49, op.clone()),
        Outcome::Many(vec![Outcome::Ok])
    );
    assert_eq!(run(&mut s, 50, op), Outcome::Aborted);
}

/// What WATCH takes of a `MapState`: whether the key is live, and
/// the state's version (its latest stamp), as `Store::watch` does.
fn watch(s: &MapState, key: &str, now: u64) -> WatchedVersion {
    WatchedVersion {
        key: b(key),
        existed: s.0.get(&b(key)).is_some_and(|r| r.is_live_at(now)),
        as_of: s.1,
    }
}

fn exec_watching(watched: Vec<WatchedVersion>) -> Op {
    Op::ExecVersioned {
        steps: vec![Step::Write(set("x", "1"))],
        watched,
    }
}

fn incr(key: &str, delta: i64) -> Op {
    Op::IncrBy { key: b(key), delta }
}

/// Starting from w = "5" (and "src" = "v", "old" = "o"), WATCH `key`
/// at t=10, apply `changes`, then EXEC at t=20: its outcome, and
/// whether its write landed.
fn watch_then(key: &str, changes: &[Op]) -> (Outcome, bool) {
    let mut s = MapState::default();
    for op in [set("w", "5"), set("src", "v"), set("old", "o")] {
        run(&mut s, 1, op);
    }
    let watched = vec![watch(&s, key, 10)];
    for change in changes {
        run(&mut s, 10, change.clone());
    }
    let outcome = run(&mut s, 20, exec_watching(watched));
    (outcome, s.0.contains_key(&b("x")))
}

#[test]
fn versioned_watch_aborts_on_every_write_after_it() {
    let cases: Vec<(&str, Vec<Op>)> = vec![
        ("w", vec![set("w", "5")]),
        ("w", vec![incr("w", 1), incr("w", -1)]),
        (
            "w",
            vec![Op::MSet {
                pairs: vec![(b("w"), b("5"))],
                if_none_exist: false,
            }],
        ),
        (
            "w",
            vec![Op::Append {
                key: b("w"),
                value: b(""),
            }],
        ),
        (
            "w",
            vec![Op::Expire {
                key: b("w"),
                at_ms: 1_000,
                condition: ExpireCondition::Always,
            }],
        ),
        (
            "w",
            vec![
                Op::Expire {
                    key: b("w"),
                    at_ms: 1_000,
                    condition: ExpireCondition::Always,
                },
                Op::Persist { key: b("w") },
            ],
        ),
        (
            "w",
            vec![Op::GetEx {
                key: b("w"),
                change: GetExChange::At(1_000),
            }],
        ),
        ("w", vec![Op::Delete { keys: vec![b("w")] }]),
        ("w", vec![Op::Delete { keys: vec![b("w")] }, set("w", "5")]),
        ("w", vec![Op::GetDel { key: b("w") }]),
        ("w", vec![Op::FlushAll]),
        (
            "w",
            vec![Op::Rename {
                from: b("w"),
                to: b("w2"),
                if_absent: false,
            }],
        ),
        (
            "src",
            vec![
                Op::Rename {
                    from: b("src"),
                    to: b("tmp"),
                    if_absent: false,
                },
                Op::Rename {
                    from: b("tmp"),
                    to: b("src"),
                    if_absent: false,
                },
            ],
        ),
        (
            "w",
            vec![Op::Rename {
                from: b("src"),
                to: b("w"),
                if_absent: false,
            }],
        ),
        ("absent", vec![set("absent", "1")]),
        // Created and deleted again: absent at WATCH and at EXEC.
        (
            "absent",
            vec![
                set("absent", "1"),
                Op::Delete {
                    keys: vec![b("absent")],
                },
            ],
        ),
        (
            "absent",
            vec![
                Op::Set {
                    key: b("absent"),
                    value: b("1"),
                    condition: SetCondition::Always,
                    expiry: SetExpiry::At(15),
                    return_old: false,
                },
                // Expired by t=20 and never swept: still a write.
            ],
        ),
    ];
    for (key, changes) in cases {
        assert_eq!(
            watch_then(key, &changes),
            (Outcome::Aborted, false),
            "WATCH {key}, then {changes:?}"
        );
    }
}

#[test]
fn versioned_watch_holds_when_nothing_changed_the_key() {
    let cases: Vec<(&str, Vec<Op>)> = vec![
        ("w", vec![]),
        ("w", vec![set("other", "1"), incr("n", 1)]),
        (
            "w",
            vec![Op::Set {
                key: b("w"),
                value: b("9"),
                condition: SetCondition::IfAbsent,
                expiry: SetExpiry::Clear,
                return_old: false,
            }],
        ),
        ("w", vec![Op::Persist { key: b("w") }]),
        (
            "w",
            vec![Op::Expire {
                key: b("w"),
                at_ms: 1_000,
                condition: ExpireCondition::IfHasExpiry,
            }],
        ),
        (
            "w",
            vec![Op::Rename {
                from: b("w"),
                to: b("w"),
                if_absent: false,
            }],
        ),
        (
            "w",
            vec![Op::SetRange {
                key: b("w"),
                offset: 0,
                value: b(""),
            }],
        ),
        // A refused write changes nothing.
        ("w", vec![incr("w", i64::MAX)]),
        (
            "absent",
            vec![Op::Delete {
                keys: vec![b("absent")],
            }],
        ),
        // Deleting a record written before WATCH is no sign that the
        // absent key was created since.
        (
            "absent",
            vec![Op::Delete {
                keys: vec![b("old")],
            }],
        ),
        ("absent", vec![Op::GetDel { key: b("absent") }]),
    ];
    for (key, changes) in cases {
        assert_eq!(
            watch_then(key, &changes),
            (Outcome::Many(vec![Outcome::Ok]), true),
            "WATCH {key}, then {changes:?}"
        );
    }
}

#[test]
fn versioned_watch_and_expiry() {
    let mut s = MapState::default();
    let expiring = |key: &str, at: u64| Op::Set {
        key: b(key),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(at),
        return_old: false,
    };
    run(&mut s, 1, expiring("w", 50));
    run(&mut s, 1, expiring("gone", 5));
    let watched = vec![watch(&s, "w", 10), watch(&s, "gone", 10)];
    assert!(watched[0].existed && !watched[1].existed);
    // Live at t=49: applied. Expired at t=50 (swept or not): aborted.
    assert_eq!(
        run(&mut s, 49, exec_watching(watched.clone())),
        Outcome::Many(vec![Outcome::Ok])
    );
    assert_eq!(run(&mut s, 50, exec_watching(watched)), Outcome::Aborted);
    // A key already expired at WATCH, swept after it: no change (as
    // Redis: it was logically absent all along).
    let mut s = MapState::default();
    run(&mut s, 1, expiring("gone", 5));
    run(&mut s, 1, set("w", "v"));
    let watched = vec![watch(&s, "gone", 10)];
    let sweep = Op::SweepExpired {
        entries: vec![(b("gone"), 5)],
    };
    assert_eq!(run(&mut s, 10, sweep), Outcome::Int(1));
    assert_eq!(
        run(&mut s, 20, exec_watching(watched)),
        Outcome::Many(vec![Outcome::Ok])
    );
}

/// The one conservative case: a key absent at WATCH aborts when any
/// record written after WATCH was deleted before EXEC, whichever key
/// it was (a created-and-deleted key leaves no record to compare).
#[test]
fn versioned_watch_of_an_absent_key_aborts_on_a_newer_deletion() {
    let mut s = MapState::default();
    run(&mut s, 1, set("w", "v"));
    let watched = vec![watch(&s, "absent", 10), watch(&s, "w", 10)];
    run(&mut s, 10, set("other", "1"));
    run(
        &mut s,
        10,
        Op::Delete {
            keys: vec![b("other")],
        },
    );
    assert_eq!(run(&mut s, 20, exec_watching(watched)), Outcome::Aborted);
    // Watching only the present key: the same deletion changes nothing.
    let mut s = MapState::default();
    run(&mut s, 1, set("w", "v"));
    let watched = vec![watch(&s, "w", 10)];
    run(&mut s, 10, set("other", "1"));
    run(
        &mut s,
        10,
        Op::Delete {
            keys: vec![b("other")],
        },
    );
    assert_eq!(
        run(&mut s, 20, exec_watching(watched)),
        Outcome::Many(vec![Outcome::Ok])
    );
}

/// Records from before versions (version 0) are older than every
/// watch: unchanged, they never abort; any write stamps past them.
#[test]
fn versioned_watch_of_an_old_record() {
    let mut s = MapState::default();
    s.0.insert(b("w"), Record::new(b("v"), 0));
    let watched = vec![WatchedVersion {
        key: b("w"),
        existed: true,
        as_of: 0,
    }];
    assert_eq!(
        run(&mut s, 20, exec_watching(watched.clone())),
        Outcome::Many(vec![Outcome::Ok])
    );
    run(&mut s, 20, set("w", "v"));
    assert_eq!(run(&mut s, 20, exec_watching(watched)), Outcome::Aborted);
}

#[test]
fn nested_versioned_exec_is_refused() {
    let mut s = MapState::default();
    let inner = Op::ExecVersioned {
        steps: vec![],
        watched: vec![],
    };
    for op in [
        exec(vec![Step::Write(inner.clone())], vec![]),
        Op::ExecVersioned {
            steps: vec![Step::Write(set("a", "1")), Step::Write(inner)],
            watched: vec![],
        },
    ] {
        assert_eq!(
            run(&mut s, 1, op),
            Outcome::Refused(MutationError::NotInTransaction)
        );
    }
    assert!(s.0.is_empty());
}

#[test]
fn exec_refuses_unfit_steps_and_checks_every_key() {
    let mut s = MapState::default();
    for unfit in [
        Op::FlushAll,
        exec(vec![], vec![]),
        Op::SweepExpired { entries: vec![] },
    ] {
        let op = exec(vec![Step::Write(set("a", "1")), Step::Write(unfit)], vec![]);
        assert_eq!(
            run(&mut s, 1, op),
            Outcome::Refused(MutationError::NotInTransaction)
        );
    }
    assert!(s.0.is_empty());
    // A key past the engine's bound anywhere refuses the whole op.
    let huge = Bytes::from(vec![b'k'; KEY_SIZE_BYTES_LIMIT + 1]);
    for op in [
        exec(
            vec![Step::Read {
                keys: vec![huge.clone()],
            }],
            vec![],
        ),
        exec(
            vec![],
            vec![Watched {
                key: huge.clone(),
                digest: None,
            }],
        ),
    ] {
        assert!(matches!(
            run(&mut s, 1, op),
            Outcome::Refused(MutationError::KeyTooLarge { .. })
        ));
    }
}

#[test]
fn exec_serialises() {
    let m = Mutation {
        now_ms: 7,
        op: exec(
            vec![
                Step::Write(set("a", "1")),
                Step::Read { keys: vec![b("a")] },
            ],
            vec![Watched {
                key: b("a"),
                digest: Some([3; 32]),
            }],
        ),
    };
    assert_eq!(Mutation::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
    let o = Outcome::Many(vec![Outcome::Aborted, Outcome::Records(vec![None])]);
    let raw = postcard::to_stdvec(&o).unwrap();
    assert_eq!(postcard::from_bytes::<Outcome>(&raw).unwrap(), o);
}

#[test]
fn mutation_serialises() {
    let m = Mutation {
        now_ms: 42,
        op: Op::MSet {
            pairs: vec![(b("a"), Bytes::from_static(b"\0\xff"))],
            if_none_exist: true,
        },
    };
    let raw = m.to_bytes().unwrap();
    assert_eq!(Mutation::from_bytes(&raw).unwrap(), m);
    assert!(Mutation::from_bytes(&raw[..raw.len() - 1]).is_err());
    // Strict: a byte after the mutation is an error too.
    let mut padded = raw.clone();
    padded.push(0);
    assert!(Mutation::from_bytes(&padded).is_err());
}

/// `Op::ExecChecked`: exact version checks first (0: no live record),
/// nothing written when one fails, which one is said; reads answer
/// versions; the answer names the version the writes were stamped with.
#[test]
fn checked_transactions_compare_exact_versions() {
    use crate::mutation::VersionCheck;
    let mut s = MapState::default();
    let check = |key: &str, version: u64| VersionCheck {
        key: b(key),
        version,
    };
    let checked = |steps: Vec<Step>, checks: Vec<VersionCheck>| Op::ExecChecked { steps, checks };
    // Create-only: the check of 0 holds while the key is absent.
    let out = run(
        &mut s,
        1,
        checked(vec![Step::Write(set("a", "1"))], vec![check("a", 0)]),
    );
    let Outcome::Checked { version, outcomes } = out else {
        panic!("{out:?}")
    };
    assert_eq!(outcomes, vec![Outcome::Ok]);
    assert_eq!(s.0[&b("a")].version, version);
    // Again: now it exists, so the check fails, and names the version.
    let again = checked(vec![Step::Write(set("a", "2"))], vec![check("a", 0)]);
    assert_eq!(
        run(&mut s, 1, again),
        Outcome::CheckFailed { check: 0, version }
    );
    assert_eq!(s.0[&b("a")].value, b("1"), "a failed check writes nothing");
    // A version above the key's is not "unchanged since": exact match only.
    let later = checked(
        vec![Step::Write(set("a", "3"))],
        vec![check("a", version + 5)],
    );
    assert!(matches!(run(&mut s, 1, later), Outcome::CheckFailed { .. }));
    // The second check fails: nothing of the first step is written either.
    let two = checked(
        vec![Step::Write(set("b", "x")), Step::Write(set("a", "4"))],
        vec![check("a", version), check("zz", 7)],
    );
    assert_eq!(
        run(&mut s, 1, two),
        Outcome::CheckFailed {
            check: 1,
            version: 0
        }
    );
    assert!(!s.0.contains_key(&b("b")));
    // All hold: the write, then a read that sees it with its version.
    let ok = checked(
        vec![
            Step::Write(set("a", "5")),
            Step::Read {
                keys: vec![b("a"), b("none")],
            },
        ],
        vec![check("a", version), check("none", 0)],
    );
    let Outcome::Checked {
        version: v2,
        outcomes,
    } = run(&mut s, 1, ok)
    else {
        panic!()
    };
    assert!(v2 > version);
    assert_eq!(
        outcomes,
        vec![
            Outcome::Ok,
            Outcome::VersionedRecords(vec![Some((b("5"), 0, v2)), None])
        ]
    );
    // An expired record is no live record: check 0 holds.
    let expiring = Op::Set {
        key: b("t"),
        value: b("v"),
        condition: SetCondition::Always,
        expiry: SetExpiry::At(10),
        return_old: false,
    };
    run(&mut s, 1, expiring);
    let after = checked(vec![], vec![check("t", 0)]);
    assert!(matches!(run(&mut s, 10, after), Outcome::Checked { .. }));
    // Refused whole when a step is unfit (FLUSHALL, a nested transaction).
    let unfit = checked(vec![Step::Write(Op::FlushAll)], vec![]);
    assert_eq!(
        run(&mut s, 1, unfit),
        Outcome::Refused(MutationError::NotInTransaction)
    );
}
