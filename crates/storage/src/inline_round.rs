//! Inline commit rounds: the writes of every connection that is ready on a
//! network thread at the same moment, committed as one group.
//!
//! Why: with `--fsync periodic|never` a single node commits a pipeline's
//! writes on the connection's own thread (`LocalStore::apply_inline`). Done
//! per connection, each unpipelined SET paid for a whole group on its own:
//! a journal `write(2)`, a new read snapshot, the write-pressure check. With
//! 50 clients that made SET 11 to 15% slower than Redis `everysec`, which
//! writes its AOF once per event-loop pass. A round does the same:
//!
//! 1. A connection adds its writes to the open round ([`Rounds::join`]) and
//!    yields to the scheduler once. Tokio's worker runs the other tasks
//!    ready on it first (and polls the network for more) before it resumes
//!    a yielded one, so the connections that are ready on that network
//!    thread in the same pass join the same round. (Tasks on other workers
//!    may join or miss it; either is correct.)
//! 2. The first member to resume takes the round ([`Rounds::take`]) and
//!    commits it (`LocalStore::run_round`): members in join order, each
//!    member's writes contiguous and in its order, cut into groups at the
//!    group-commit limits (between members, never inside one).
//! 3. Every member gets its outcomes through its own channel, after they
//!    are published, so a client that reads after its reply sees its write.
//!    A member whose group could not be committed inline (the writer was
//!    busy, prefetching, near a write stall) gets its writes back and sends
//!    them through the writer's queue, in order, as before.
//!
//! No member waits for a round that nobody runs: whoever takes it commits
//! it before it awaits anything, and every member that resumes tries to
//! take it. A round is bounded by the connections (each has at most one
//! membership, of at most its pipeline limit); the member that takes it
//! commits at most [`ROUND_GROUPS_MAX`] groups of it and hands the rest back
//! for the queue, so one poll of one task does bounded work.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::mutation::{Mutation, Outcome};

/// Groups the member that takes a round commits at most; the members
/// after them get their writes back for the writer thread's queue. Why:
/// the commit runs inside one poll of one connection's task, which must not
/// hold its network thread for an unbounded time (4096 connections × 1024
/// pipelined writes could all be ready at once). Four groups of the
/// default 4096 writes are far above a typical round (50 clients with 16
/// pipelined writes each make 800).
pub(crate) const ROUND_GROUPS_MAX: usize = 4;

/// What a member gets back: its outcomes, in order, or its writes, which
/// could not be committed inline and must go through the queue.
pub(crate) type Answer = std::result::Result<Vec<Result<Outcome>>, Vec<Mutation>>;

/// One connection's writes in a round.
pub(crate) struct Member {
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Round {
    /// Which round is open; a member that resumes takes the round only if
    /// its own is still the open one.
    id: u64,
    members: Vec<Member>,
}

/// The open round of a store.
#[derive(Default)]
pub(crate) struct Rounds {
    open: Mutex<Round>,
}

impl Rounds {
    /// Adds `member` to the open round and says which round that is.
    pub(crate) fn join(&self, member: Member) -> u64 {
        let mut open = self.lock();
        open.members.push(member);
        open.id
    }

    /// The members of round `id`, if it is still open (nobody took it yet);
    /// a new round opens.
    pub(crate) fn take(&self, id: u64) -> Option<Vec<Member>> {
        let mut open = self.lock();
        if open.id != id || open.members.is_empty() {
            return None;
        }
        open.id = open.id.wrapping_add(1);
        Some(std::mem::take(&mut open.members))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Round> {
        // The critical sections only push and swap vectors: a panic cannot
        // leave a round half-changed, so a poisoned lock is still good.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cuts `members` into runs whose writes fit one group: at most
/// `mutations_max` writes and `size_bytes_max` payload bytes, except that
/// a single member is never cut (one larger than a group is alone, and
/// [`LocalStore::apply_inline`](crate::LocalStore::apply_inline) refuses it).
pub(crate) fn cut(
    members: Vec<Member>,
    mutations_max: usize,
    size_bytes_max: usize,
) -> Vec<Vec<Member>> {
    let mut runs = Vec::new();
    let mut run: Vec<Member> = Vec::new();
    let (mut len, mut size) = (0usize, 0usize);
    for m in members {
        let m_len = m.mutations.len();
        let m_size: usize = m.mutations.iter().map(Mutation::payload_size_bytes).sum();
        if !run.is_empty()
            && (len.saturating_add(m_len) > mutations_max
                || size.saturating_add(m_size) > size_bytes_max)
        {
            runs.push(std::mem::take(&mut run));
            (len, size) = (0, 0);
        }
        len += m_len;
        size += m_size;
        run.push(m);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::{Op, SetCondition, SetExpiry};

    fn member(key: &str, writes: usize, value_len: usize) -> (Member, oneshot::Receiver<Answer>) {
        let (answer, rx) = oneshot::channel();
        let mutations = (0..writes)
            .map(|_| Mutation {
                now_ms: 0,
                op: Op::Set {
                    key: key.as_bytes().to_vec().into(),
                    value: vec![0u8; value_len].into(),
                    condition: SetCondition::Always,
                    expiry: SetExpiry::Keep,
                    return_old: false,
                },
            })
            .collect();
        (Member { mutations, answer }, rx)
    }

    fn first_key(m: &Member) -> String {
        match &m.mutations[0].op {
            Op::Set { key, .. } => String::from_utf8_lossy(key).into_owned(),
            _ => "?".into(),
        }
    }

    #[test]
    fn a_round_is_taken_once_and_a_new_one_opens() {
        let rounds = Rounds::default();
        let (a, _ra) = member("a", 1, 1);
        let (b, _rb) = member("b", 1, 1);
        let id = rounds.join(a);
        assert_eq!(rounds.join(b), id, "both join the open round");
        let taken = rounds.take(id).expect("the open round");
        assert_eq!(taken.iter().map(first_key).collect::<Vec<_>>(), ["a", "b"]);
        assert!(rounds.take(id).is_none(), "a taken round is gone");
        let (c, _rc) = member("c", 1, 1);
        let next = rounds.join(c);
        assert_ne!(next, id, "a new round opened");
        assert!(
            rounds.take(id).is_none(),
            "an old id never takes a new round"
        );
        assert_eq!(rounds.take(next).map(|m| m.len()), Some(1));
        assert!(rounds.take(next + 1).is_none(), "nothing to take");
    }

    #[test]
    fn cut_keeps_join_order_and_the_group_limits_and_never_splits_a_member() {
        let mut members = Vec::new();
        let mut rxs = Vec::new();
        for (key, writes, value_len) in [
            ("a", 3, 1),
            ("b", 3, 1),
            ("c", 3, 1),  // a+b+c = 9 writes: fits 10
            ("d", 2, 1),  // would make 11: new run
            ("e", 12, 1), // larger than a group alone: its own run
            ("f", 1, 90), // bytes: 90 fits 100
            ("g", 1, 20), // 90 + 20 > 100: new run
        ] {
            let (m, rx) = member(key, writes, value_len);
            members.push(m);
            rxs.push(rx);
        }
        let runs = cut(members, 10, 100);
        let shapes: Vec<Vec<String>> = runs
            .iter()
            .map(|r| r.iter().map(first_key).collect())
            .collect();
        assert_eq!(
            shapes,
            [
                vec!["a", "b", "c"],
                vec!["d"],
                vec!["e"],
                vec!["f"],
                vec!["g"]
            ]
        );
        assert!(cut(Vec::new(), 10, 100).is_empty());
    }
}
