//! Which members are failed: the leader's judgement, from when each
//! member last acknowledged a heartbeat or an append, shared with the
//! followers.
//!
//! Why: the Redis Cluster emulation leaves a failed replica out of
//! CLUSTER SLOTS and marks it `fail` in CLUSTER SHARDS and NODES, as Redis
//! does, so that cluster-aware clients do not route reads to, or keep
//! reconnecting to, a node that is down. Only the leader hears from every
//! member; a follower asks it every few seconds and keeps the answer for a
//! bounded time, after which it knows nothing (and lists everyone) rather
//! than something stale.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// How often a follower asks the leader which members are failed.
pub(crate) const ASK_INTERVAL_MS: u64 = 2_000;
/// How long a follower trusts the leader's last answer: three asks, so one
/// lost answer does not make the view flicker.
const ANSWER_FRESH_MS: u64 = 3 * ASK_INTERVAL_MS;

/// A member counts as failed once the leader has not heard from it for
/// this many election timeouts: longer than any pause a live follower
/// shows under load, short enough that clients stop using it within
/// seconds.
const FAILED_AFTER_ELECTION_TIMEOUTS: u64 = 2;

#[derive(Default)]
pub(crate) struct MemberHealth {
    /// The term this node last led in, and since when (a member never heard
    /// from is failed only once the leader has led long enough to hear it).
    led: Mutex<Option<(u64, Instant)>>,
    /// On a follower: the leader's last answer and when it came.
    learned: Mutex<Option<(BTreeSet<NodeId>, Instant)>>,
}

impl MemberHealth {
    /// The failed members as the leader sees them. `last_heard` gives, for
    /// each other member, the time since it last acknowledged this leader
    /// (None: never, in this term).
    pub(crate) fn judge_as_leader(
        &self,
        term: u64,
        election_timeout_ms: u64,
        last_heard: impl Iterator<Item = (NodeId, Option<Duration>)>,
    ) -> BTreeSet<NodeId> {
        let window = Duration::from_millis(election_timeout_ms * FAILED_AFTER_ELECTION_TIMEOUTS);
        let led_for = {
            let mut led = self.led.lock().unwrap_or_else(|p| p.into_inner());
            match *led {
                Some((t, since)) if t == term => since.elapsed(),
                _ => {
                    *led = Some((term, Instant::now()));
                    Duration::ZERO
                }
            }
        };
        last_heard
            .filter(|(_, age)| match age {
                Some(age) => *age > window,
                None => led_for > window,
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Keeps the leader's answer (on a follower).
    pub(crate) fn learn(&self, failed: BTreeSet<NodeId>) {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        *learned = Some((failed, Instant::now()));
    }

    /// The leader's last answer while it is fresh; empty (nobody known to
    /// be failed) otherwise.
    pub(crate) fn learned(&self) -> BTreeSet<NodeId> {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        match &*learned {
            Some((failed, at)) if at.elapsed() < Duration::from_millis(ANSWER_FRESH_MS) => {
                failed.clone()
            }
            _ => BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_heard_recently_is_not_failed_and_a_silent_one_is() {
        let h = MemberHealth::default();
        let heard = vec![
            (2, Some(Duration::from_millis(100))),
            (3, Some(Duration::from_millis(2_500))),
        ];
        let failed = h.judge_as_leader(5, 1_000, heard.into_iter());
        assert_eq!(failed, BTreeSet::from([3]));
    }

    #[test]
    fn a_member_never_heard_is_failed_only_after_the_window() {
        let h = MemberHealth::default();
        // Just elected: nobody has answered yet, nobody is failed.
        assert!(h.judge_as_leader(5, 1, [(2, None)].into_iter()).is_empty());
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(
            h.judge_as_leader(5, 1, [(2, None)].into_iter()),
            BTreeSet::from([2])
        );
        // A new term starts the window again.
        assert!(h.judge_as_leader(6, 1, [(2, None)].into_iter()).is_empty());
    }

    #[test]
    fn a_follower_forgets_a_stale_answer() {
        let h = MemberHealth::default();
        assert!(h.learned().is_empty());
        h.learn(BTreeSet::from([4]));
        assert_eq!(h.learned(), BTreeSet::from([4]));
        let Some(long_ago) = Instant::now().checked_sub(Duration::from_millis(ANSWER_FRESH_MS + 1))
        else {
            return; // the clock started less than that ago: nothing to test
        };
        *h.learned.lock().unwrap() = Some((BTreeSet::from([4]), long_ago));
        assert!(h.learned().is_empty());
    }
}
