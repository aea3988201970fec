//! A linearizability checker for per-key histories of SET / GET / INCR /
//! DEL, with operations whose outcome is unknown.
//!
//! The algorithm is Wing & Gong's search with Lowe's memoization, as in
//! Porcupine (Athalye, 2017): the history becomes a list of call and return
//! events in time order; the search repeatedly picks an operation whose call
//! comes before every pending return, applies it to the sequential model
//! and removes it from the list; when it reaches the return of an operation
//! it has not been able to place, it backtracks. A cache of (set of placed
//! operations, model state) pairs cuts the revisiting of equivalent
//! configurations. Keys are independent (linearizability is compositional),
//! so each key's history is checked on its own ([`check_keys`]).
//!
//! **Unknown outcomes.** A write whose reply never came (timeout, closed
//! connection, `-CLUSTERDOWN`, `-TRYAGAIN`) may or may not have taken
//! effect, at any time after its call. It is given a return time of
//! infinity and accepts any output, so the search may place it anywhere
//! after its call, including after everything else (which is the same as
//! never). A read with no reply tells nothing and is dropped.
//!
//! **Model.** A key holds nothing or a byte string. `SET v` stores `v` and
//! answers OK. `GET` answers the value (or nil). `INCR` treats a missing
//! value as 0, stores and answers the value + 1 if the value is a decimal
//! i64 (and does not overflow), else answers an error and changes nothing.
//! `DEL` removes the value and answers 1 if there was one, else 0.
//!
//! Why not `stateright`'s `LinearizabilityTester`: it searches without
//! memoization (exponential on the histories that matter most, the
//! non-linearizable ones), wants one operation in flight per thread, and
//! pulls in an HTTP server among its dependencies. This is ~300 lines with
//! the tests below as its specification.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// An operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Set(Vec<u8>),
    Get,
    Incr,
    Del,
}

/// A completed operation's reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `+OK` (SET).
    Ok,
    /// A GET's value (`None`: nil).
    Value(Option<Vec<u8>>),
    /// An integer reply (INCR's new value, DEL's count).
    Int(i64),
    /// A definite error that changed nothing (e.g. INCR of a non-integer).
    Err,
}

/// One operation of a history. Times are in any monotonic unit (the runner
/// uses nanoseconds since the run started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who issued it (a client thread); for reports only.
    pub client: u64,
    /// Which node it was sent to (0: unspecified); for reports only.
    pub node: u64,
    pub op: Op,
    pub call: u64,
    /// `None`: the outcome is unknown.
    pub ret: Option<(u64, Ret)>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match &self.op {
            Op::Set(v) => format!("SET {}", show(v)),
            Op::Get => "GET".to_string(),
            Op::Incr => "INCR".to_string(),
            Op::Del => "DEL".to_string(),
        };
        let ret = match &self.ret {
            None => "?? (unknown outcome)".to_string(),
            Some((t, r)) => format!("{} @{}", show_ret(r), fmt_ns(*t)),
        };
        write!(
            f,
            "client {} node {} @{} {op} -> {ret}",
            self.client,
            self.node,
            fmt_ns(self.call)
        )
    }
}

fn show(v: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(v))
}

fn show_ret(r: &Ret) -> String {
    match r {
        Ret::Ok => "OK".into(),
        Ret::Value(None) => "nil".into(),
        Ret::Value(Some(v)) => show(v),
        Ret::Int(n) => n.to_string(),
        Ret::Err => "ERR".into(),
    }
}

/// Nanoseconds as seconds with millisecond precision: `12.345s`.
pub fn fmt_ns(ns: u64) -> String {
    format!(
        "{}.{:06}s",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1_000
    )
}

/// The model state of one key.
pub type State = Option<Vec<u8>>;

/// Applies `op` to `state`. With `ret = Some(r)` the step is allowed only if
/// the model answers `r`; with `None` (unknown outcome) any answer is
/// accepted. Returns the next state, or `None` if the step is not allowed.
pub fn step(state: &State, op: &Op, ret: Option<&Ret>) -> Option<State> {
    match op {
        Op::Set(v) => match ret {
            None | Some(Ret::Ok) => Some(Some(v.clone())),
            Some(_) => None,
        },
        Op::Get => match ret {
            None => Some(state.clone()),
            Some(Ret::Value(v)) if v == state => Some(state.clone()),
            Some(_) => None,
        },
        Op::Incr => {
            let next = match state {
                None => Some(1i64),
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|n| n.checked_add(1)),
            };
            match (next, ret) {
                (Some(n), None) => Some(Some(n.to_string().into_bytes())),
                (Some(n), Some(Ret::Int(m))) if n == *m => Some(Some(n.to_string().into_bytes())),
                (None, None | Some(Ret::Err)) => Some(state.clone()),
                _ => None,
            }
        }
        Op::Del => {
            let existed = i64::from(state.is_some());
            match ret {
                None => Some(None),
                Some(Ret::Int(n)) if *n == existed => Some(None),
                Some(_) => None,
            }
        }
    }
}

/// Why a check gave up without a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconclusive {
    pub steps: u64,
}

/// The outcome of checking one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Ok,
    /// None exists; the report explains where the search got stuck.
    Violation(Violation),
    /// The search exceeded its step budget.
    Inconclusive(Inconclusive),
}

/// Where the search got stuck: the longest linearizable prefix it found,
/// and the operation it could not place before that operation's return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The operations of the longest prefix, in linearization order.
    pub longest_prefix: Vec<Entry>,
    /// The model state after that prefix.
    pub state_after_prefix: State,
    /// An operation that could not be placed (returned before it could
    /// take effect).
    pub stuck: Entry,
    /// Operations concurrent with `stuck` or close to it, for the report.
    pub excerpt: Vec<Entry>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "not linearizable; cannot place: {}", self.stuck)?;
        let state = match &self.state_after_prefix {
            Some(v) => show(v),
            None => "nil".into(),
        };
        writeln!(
            f,
            "longest linearizable prefix: {} ops, ending in state {state}; its last ops:",
            self.longest_prefix.len()
        )?;
        let skip = self.longest_prefix.len().saturating_sub(8);
        for e in &self.longest_prefix[skip..] {
            writeln!(f, "    {e}")?;
        }
        writeln!(f, "history around it (by call time):")?;
        for e in &self.excerpt {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

/// Default bound on search steps per key (the memo cache grows by at most
/// one entry of ~n/8 bytes per step, so this also bounds memory; in
/// practice most steps hit the cache: 2G-step checks ran in ~4 s).
// 500M: counters with a dozen unknown-outcome INCRs need up to ~2G steps in
// the worst histories seen (about 4 s); 5M made valid seeds inconclusive.
pub const DEFAULT_STEP_BUDGET: u64 = 500_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Call,
    Return,
}

/// A doubly linked list of events over an array; index `n` is the head.
struct Events {
    op: Vec<usize>,
    kind: Vec<Kind>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each op, the index of its call and return events.
    call_of: Vec<usize>,
    ret_of: Vec<usize>,
}

const NIL: usize = usize::MAX;

impl Events {
    fn head(&self) -> usize {
        self.op.len()
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != NIL {
            self.prev[n] = i;
        }
    }

    /// Removes op's call and return (return first, so unlift can reverse).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        self.unlink(self.ret_of[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.ret_of[op]);
        self.relink(self.call_of[op]);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks one key's history with the default step budget.
pub fn check(history: &[Entry]) -> Verdict {
    check_with_budget(history, DEFAULT_STEP_BUDGET)
}

/// Checks one key's history, giving up after `budget` search steps.
pub fn check_with_budget(history: &[Entry], budget: u64) -> Verdict {
    // Reads with an unknown outcome tell nothing.
    let ops: Vec<&Entry> = history
        .iter()
        .filter(|e| !(e.op == Op::Get && e.ret.is_none()))
        .collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Ok;
    }

    // Events in time order; at equal times calls come first, which treats
    // touching operations as concurrent (the lenient, safe choice).
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in ops.iter().enumerate() {
        order.push((e.call, 0, i));
        let ret_time = e.ret.as_ref().map_or(u64::MAX, |(t, _)| (*t).max(e.call));
        order.push((ret_time, 1, i));
    }
    order.sort_unstable();
    let len = order.len();
    let mut ev = Events {
        op: Vec::with_capacity(len),
        kind: Vec::with_capacity(len),
        next: vec![NIL; len + 1],
        prev: vec![NIL; len + 1],
        call_of: vec![0; n],
        ret_of: vec![0; n],
    };
    for (idx, &(_, k, op)) in order.iter().enumerate() {
        ev.op.push(op);
        if k == 0 {
            ev.kind.push(Kind::Call);
            ev.call_of[op] = idx;
        } else {
            ev.kind.push(Kind::Return);
            ev.ret_of[op] = idx;
        }
    }
    let head = ev.head();
    ev.next[head] = 0;
    for i in 0..len {
        ev.prev[i] = if i == 0 { head } else { i - 1 };
        ev.next[i] = if i + 1 < len { i + 1 } else { NIL };
    }

    let mut linearized = Bits::new(n);
    let mut cache: HashSet<(Bits, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut steps: u64 = 0;
    // Diagnostics: the deepest prefix and the op that blocked it.
    let mut best: Vec<usize> = Vec::new();
    let mut best_state: State = None;
    let mut best_stuck: Option<usize> = None;

    let mut cur = ev.next[head];
    while ev.next[head] != NIL {
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive(Inconclusive { steps });
        }
        if cur == NIL {
            // Cannot happen: the last event of a non-empty list is a return.
            break;
        }
        let op = ev.op[cur];
        match ev.kind[cur] {
            Kind::Call => {
                let entry = ops[op];
                let ret = entry.ret.as_ref().map(|(_, r)| r);
                if let Some(next_state) = step(&state, &entry.op, ret) {
                    linearized.set(op);
                    if cache.insert((linearized.clone(), next_state.clone())) {
                        stack.push((op, std::mem::replace(&mut state, next_state)));
                        ev.lift(op);
                        cur = ev.next[head];
                        continue;
                    }
                    linearized.clear(op);
                }
                cur = ev.next[cur];
            }
            Kind::Return => {
                // `op` returned but could not be placed before it.
                if stack.len() >= best.len() {
                    best = stack.iter().map(|(o, _)| *o).collect();
                    best_state = state.clone();
                    best_stuck = Some(op);
                }
                let Some((top, previous)) = stack.pop() else {
                    return Verdict::Violation(violation(
                        &ops,
                        &best,
                        best_state,
                        best_stuck.unwrap_or(op),
                    ));
                };
                linearized.clear(top);
                state = previous;
                ev.unlift(top);
                cur = ev.next[ev.call_of[top]];
            }
        }
    }
    Verdict::Ok
}

fn violation(ops: &[&Entry], prefix: &[usize], state: State, stuck: usize) -> Violation {
    let stuck_entry = ops[stuck].clone();
    let from = stuck_entry.call;
    let to = stuck_entry.ret.as_ref().map_or(u64::MAX, |(t, _)| *t);
    // Everything overlapping [from, to], plus the few operations just
    // before it.
    let mut by_call: Vec<&Entry> = ops.to_vec();
    by_call.sort_by_key(|e| e.call);
    let overlapping = |e: &&Entry| {
        let end = e.ret.as_ref().map_or(u64::MAX, |(t, _)| *t);
        e.call <= to && end >= from
    };
    let first = by_call.iter().position(overlapping).unwrap_or(0);
    let mut excerpt: Vec<Entry> = by_call[first.saturating_sub(6)..first]
        .iter()
        .map(|e| (*e).clone())
        .collect();
    excerpt.extend(
        by_call[first..]
            .iter()
            .filter(|e| overlapping(e) && e.call <= to)
            .take(40)
            .map(|e| (*e).clone()),
    );
    Violation {
        longest_prefix: prefix.iter().map(|&i| ops[i].clone()).collect(),
        state_after_prefix: state,
        stuck: stuck_entry,
        excerpt,
    }
}

/// Checks every key's history; returns the verdict per key.
pub fn check_keys(
    histories: &BTreeMap<Vec<u8>, Vec<Entry>>,
    budget: u64,
) -> Vec<(Vec<u8>, Verdict)> {
    histories
        .iter()
        .map(|(key, history)| (key.clone(), check_with_budget(history, budget)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds histories tersely: `(client, call, return, op, ret)`; a
    /// return time of 0 means an unknown outcome.
    fn h(items: &[(u64, u64, u64, Op, Ret)]) -> Vec<Entry> {
        items
            .iter()
            .map(|(client, call, ret_t, op, ret)| Entry {
                client: *client,
                node: 0,
                op: op.clone(),
                call: *call,
                ret: (*ret_t != 0).then(|| (*ret_t, ret.clone())),
            })
            .collect()
    }

    fn set(v: &str) -> Op {
        Op::Set(v.as_bytes().to_vec())
    }
    fn val(v: &str) -> Ret {
        Ret::Value(Some(v.as_bytes().to_vec()))
    }
    fn nil() -> Ret {
        Ret::Value(None)
    }

    fn ok(history: &[Entry]) {
        match check(history) {
            Verdict::Ok => {}
            other => panic!("expected linearizable, got {other:?}"),
        }
    }

    fn bad(history: &[Entry]) -> Violation {
        match check(history) {
            Verdict::Violation(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn model_steps() {
        assert_eq!(
            step(&None, &Op::Incr, Some(&Ret::Int(1))),
            Some(Some(b"1".to_vec()))
        );
        assert_eq!(
            step(&Some(b"41".to_vec()), &Op::Incr, Some(&Ret::Int(42))),
            Some(Some(b"42".to_vec()))
        );
        assert_eq!(
            step(&Some(b"41".to_vec()), &Op::Incr, Some(&Ret::Int(41))),
            None
        );
        assert_eq!(
            step(&Some(b"x".to_vec()), &Op::Incr, Some(&Ret::Err)),
            Some(Some(b"x".to_vec()))
        );
        assert_eq!(step(&Some(b"1".to_vec()), &Op::Incr, Some(&Ret::Err)), None);
        let max = i64::MAX.to_string().into_bytes();
        assert_eq!(
            step(&Some(max.clone()), &Op::Incr, Some(&Ret::Err)),
            Some(Some(max))
        );
        assert_eq!(step(&None, &Op::Del, Some(&Ret::Int(0))), Some(None));
        assert_eq!(step(&None, &Op::Del, Some(&Ret::Int(1))), None);
        assert_eq!(
            step(&Some(b"a".to_vec()), &Op::Del, Some(&Ret::Int(1))),
            Some(None)
        );
        assert_eq!(step(&None, &Op::Get, Some(&nil())), Some(None));
        assert_eq!(step(&None, &Op::Get, Some(&val("a"))), None);
        assert_eq!(step(&None, &set("a"), Some(&Ret::Err)), None);
    }

    #[test]
    fn empty_and_sequential() {
        ok(&[]);
        ok(&h(&[
            (1, 1, 2, Op::Get, nil()),
            (1, 3, 4, set("a"), Ret::Ok),
            (2, 5, 6, Op::Get, val("a")),
            (2, 7, 8, Op::Del, Ret::Int(1)),
            (1, 9, 10, Op::Get, nil()),
            (1, 11, 12, Op::Incr, Ret::Int(1)),
            (2, 13, 14, Op::Incr, Ret::Int(2)),
            (1, 15, 16, Op::Get, val("2")),
        ]));
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        // SET a [1,10] overlaps both reads; one reads old, one new, in the
        // right order.
        ok(&h(&[
            (1, 1, 10, set("a"), Ret::Ok),
            (2, 2, 4, Op::Get, nil()),
            (3, 5, 7, Op::Get, val("a")),
        ]));
        // Two concurrent writes, reads agree on one order.
        ok(&h(&[
            (1, 1, 10, set("a"), Ret::Ok),
            (2, 1, 10, set("b"), Ret::Ok),
            (3, 11, 12, Op::Get, val("a")),
            (3, 13, 14, Op::Get, val("a")),
        ]));
    }

    #[test]
    fn stale_read_is_caught() {
        // SET b completes, then a later read returns the old a.
        let v = bad(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (1, 3, 4, set("b"), Ret::Ok),
            (2, 5, 6, Op::Get, val("a")),
        ]));
        assert_eq!(v.stuck.op, Op::Get);
        assert!(v.to_string().contains("cannot place"));
    }

    #[test]
    fn read_of_a_value_never_written_is_caught() {
        bad(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (2, 3, 4, Op::Get, val("zzz")),
        ]));
    }

    #[test]
    fn lost_write_is_caught() {
        // An acknowledged write that a later read does not see (the value
        // went back to nil).
        bad(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (2, 10, 11, Op::Get, nil()),
        ]));
    }

    #[test]
    fn non_monotonic_reads_are_caught() {
        // Two reads after a concurrent write: new then old is not allowed
        // (the second read starts after the first ended).
        bad(&h(&[
            (1, 1, 20, set("b"), Ret::Ok),
            (2, 2, 3, Op::Get, val("b")),
            (3, 4, 5, Op::Get, nil()),
        ]));
    }

    #[test]
    fn double_incr_is_caught() {
        // Two acknowledged INCRs, but the counter moved by three: one was
        // applied twice (e.g. a retried forward).
        bad(&h(&[
            (1, 1, 2, Op::Incr, Ret::Int(1)),
            (2, 3, 4, Op::Incr, Ret::Int(2)),
            (3, 5, 6, Op::Get, val("3")),
        ]));
        // Same with a duplicated reply value.
        bad(&h(&[
            (1, 1, 5, Op::Incr, Ret::Int(1)),
            (2, 1, 5, Op::Incr, Ret::Int(1)),
        ]));
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_apply() {
        // Unknown SET: a later read may see it ...
        ok(&h(&[
            (1, 1, 0, set("a"), Ret::Ok),
            (2, 5, 6, Op::Get, val("a")),
        ]));
        // ... or not ...
        ok(&h(&[
            (1, 1, 0, set("a"), Ret::Ok),
            (2, 5, 6, Op::Get, nil()),
        ]));
        // ... even late, but not before its call ...
        ok(&h(&[
            (1, 1, 0, set("a"), Ret::Ok),
            (2, 5, 6, Op::Get, nil()),
            (2, 7, 8, Op::Get, val("a")),
        ]));
        bad(&h(&[
            (2, 1, 2, Op::Get, val("a")),
            (1, 3, 0, set("a"), Ret::Ok),
        ]));
        // ... and once seen, it cannot be un-seen.
        bad(&h(&[
            (1, 1, 0, set("a"), Ret::Ok),
            (2, 5, 6, Op::Get, val("a")),
            (2, 7, 8, Op::Get, nil()),
        ]));
    }

    #[test]
    fn unknown_incr_counts_at_most_once() {
        // One acked INCR and one unknown: the counter may be 1 or 2 ...
        let base = [
            (1, 1, 2, Op::Incr, Ret::Int(1)),
            (2, 3, 0, Op::Incr, Ret::Ok),
        ];
        let mut two = base.to_vec();
        two.push((3, 10, 11, Op::Get, val("2")));
        ok(&h(&two));
        let mut one = base.to_vec();
        one.push((3, 10, 11, Op::Get, val("1")));
        ok(&h(&one));
        // ... but never 3 (applied twice).
        let mut three = base.to_vec();
        three.push((3, 10, 11, Op::Get, val("3")));
        bad(&h(&three));
    }

    #[test]
    fn unknown_reads_are_ignored() {
        ok(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (2, 3, 0, Op::Get, Ret::Ok),
            (2, 5, 6, Op::Get, val("a")),
        ]));
    }

    #[test]
    fn del_counts_are_checked() {
        ok(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (1, 3, 4, Op::Del, Ret::Int(1)),
            (2, 5, 6, Op::Del, Ret::Int(0)),
        ]));
        bad(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (1, 3, 4, Op::Del, Ret::Int(1)),
            (2, 5, 6, Op::Del, Ret::Int(1)),
        ]));
        // A concurrent SET can make a second DEL find a value.
        ok(&h(&[
            (1, 1, 2, set("a"), Ret::Ok),
            (1, 3, 4, Op::Del, Ret::Int(1)),
            (3, 3, 10, set("b"), Ret::Ok),
            (2, 5, 6, Op::Del, Ret::Int(1)),
        ]));
    }

    /// A random linearizable history from a simulated atomic register with
    /// `clients` concurrent clients, some outcomes unknown; and the same
    /// with one read corrupted to a stale value.
    fn simulated(seed: u64, ops: usize, clients: u64, unknown_pct: u64) -> Vec<Entry> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut state: State = None;
        let mut out = Vec::new();
        // Each client has one op in flight; each op takes effect at one
        // instant between its call and return.
        let mut t = 0u64;
        let mut pending: Vec<(u64, u64, Op)> = Vec::new(); // (client, call, op)
        let mut next_val = 0;
        for c in 0..clients {
            t += 1;
            pending.push((c, t, Op::Get));
        }
        while out.len() < ops {
            t += 1;
            let i = rng.below(pending.len() as u64) as usize;
            let (client, call, op) = pending.swap_remove(i);
            // Take effect now.
            let ret = match &op {
                Op::Set(_) => Ret::Ok,
                Op::Get => Ret::Value(state.clone()),
                Op::Incr => Ret::Int(0),
                Op::Del => Ret::Int(i64::from(state.is_some())),
            };
            state = step(&state, &op, None).unwrap();
            let ret = match (&op, ret) {
                (Op::Incr, _) => Ret::Int(
                    std::str::from_utf8(state.as_ref().unwrap())
                        .unwrap()
                        .parse()
                        .unwrap(),
                ),
                (_, r) => r,
            };
            t += 1 + rng.below(3);
            let unknown = op != Op::Get && rng.below(100) < unknown_pct;
            out.push(Entry {
                client,
                node: 0,
                op,
                call,
                ret: (!unknown).then_some((t, ret)),
            });
            t += 1;
            let next = match rng.below(10) {
                0..=3 => Op::Get,
                4..=6 => {
                    next_val += 1;
                    Op::Set(format!("v{next_val}").into_bytes())
                }
                7 => Op::Del,
                _ => Op::Get,
            };
            pending.push((client, t, next));
        }
        out
    }

    #[test]
    fn random_linearizable_histories_pass() {
        for seed in 0..30 {
            let history = simulated(seed, 300, 5, 5);
            ok(&history);
        }
    }

    #[test]
    fn counter_histories() {
        // Sequential INCRs from several clients with overlapping windows.
        let mut items = Vec::new();
        for i in 0..200u64 {
            items.push((i % 4, 10 * i, 10 * i + 25, Op::Incr, Ret::Int(i as i64 + 1)));
        }
        ok(&h(&items));
        // One reply out of place: INCR that returns a value already taken.
        items[150].4 = Ret::Int(100);
        bad(&h(&items));
    }

    #[test]
    fn corrupted_random_histories_fail() {
        let mut failures = 0;
        for seed in 0..30 {
            let mut history = simulated(seed, 300, 5, 5);
            // Make a late read return a value that was overwritten long
            // before (by an acknowledged SET) it started.
            let late = history
                .iter()
                .rposition(|e| e.op == Op::Get && e.ret.is_some())
                .unwrap();
            let old = history.iter().position(|e| {
                matches!(e.op, Op::Set(_))
                    && e.ret.is_some()
                    && e.ret.as_ref().unwrap().0 + 200 < history[late].call
            });
            let Some(old) = old else { continue };
            let Op::Set(v) = history[old].op.clone() else {
                unreachable!()
            };
            // Only a real stale read if some acknowledged write ended after
            // `old` and before the late read started.
            let overwritten = history.iter().any(|e| {
                matches!(e.op, Op::Set(_) | Op::Del)
                    && e.call > history[old].ret.as_ref().unwrap().0
                    && e.ret.as_ref().is_some_and(|(t, _)| *t < history[late].call)
            });
            if !overwritten {
                continue;
            }
            history[late].ret.as_mut().unwrap().1 = Ret::Value(Some(v));
            match check(&history) {
                Verdict::Violation(_) => failures += 1,
                other => panic!("seed {seed}: stale read accepted: {other:?}"),
            }
        }
        assert!(failures > 20, "only {failures} corrupted histories checked");
    }

    #[test]
    fn many_unknowns_stay_tractable() {
        for seed in 0..5 {
            let history = simulated(100 + seed, 2_000, 8, 15);
            let started = std::time::Instant::now();
            ok(&history);
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
        }
    }

    #[test]
    fn budget_gives_inconclusive() {
        let history = simulated(7, 500, 6, 10);
        assert!(matches!(
            check_with_budget(&history, 10),
            Verdict::Inconclusive(_)
        ));
    }

    #[test]
    fn check_keys_is_per_key() {
        let mut map = BTreeMap::new();
        map.insert(
            b"good".to_vec(),
            h(&[(1, 1, 2, set("a"), Ret::Ok), (1, 3, 4, Op::Get, val("a"))]),
        );
        map.insert(
            b"bad".to_vec(),
            h(&[(1, 1, 2, set("a"), Ret::Ok), (1, 3, 4, Op::Get, nil())]),
        );
        let verdicts = check_keys(&map, DEFAULT_STEP_BUDGET);
        assert!(matches!(verdicts[0], (ref k, Verdict::Violation(_)) if k == b"bad"));
        assert!(matches!(verdicts[1], (ref k, Verdict::Ok) if k == b"good"));
    }
}
