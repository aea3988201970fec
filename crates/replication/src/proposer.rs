//! The proposer: on the leader, every write batch (a client connection's
//! pipeline, a forwarded batch, an expiry sweep) goes through one task that
//! gathers the batches waiting at that moment and proposes them as few log
//! entries ([`Proposal`]s) as the proposal limits allow.
//!
//! Why: most of a replicated write's cost is per log entry, not per
//! command: openraft's bookkeeping on the leader and every follower, the
//! log append, the AppendEntries payload, the applied mark. Proposing each
//! command as its own entry made a 3-node cluster spend 14 µs of CPU per
//! pipelined SET; see docs/perf-log/2026-11-23-cluster-proposals.md.
//!
//! Order: the task takes batches in arrival order and hands each gather to
//! the Raft core in one message, so commands enter the log in arrival order
//! and a batch's commands keep theirs. Gathering adds no wait of its own:
//! a write on an idle leader is proposed at once; under load, the writes
//! that arrive while one gather replicates and applies form the next one,
//! as in a group commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use openraft::error::ClientWriteError;
use strata_storage::Outcome;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use openraft::async_runtime::WatchReceiver;

use crate::types::{Command, Proposal, Raft, TypeConfig};
use crate::wire::ForwardError;

/// Batches waiting for the proposer at most; past it, submitters wait.
pub(crate) const PROPOSER_QUEUE_LEN_MAX: usize = 1024;
/// Commands gathered into one hand-over to the Raft core at most (a single
/// larger batch is still handed over whole, split into entries).
const GATHER_COMMANDS_MAX: usize = 4096;
/// Gathers proposed and not yet applied at once. One, as in a group
/// commit: while a gather replicates, the next one fills up. Measured on a
/// 3-node loopback cluster (redis-benchmark -c 50, SET), against no limit:
/// pipelined 223k vs 196k requests/s, unpipelined 38.6k vs 29.8k; limits
/// of 2, 4 and 8 fell in between (docs/perf-log/2026-11-23-cluster-proposals.md).
const GATHERS_IN_FLIGHT_MAX: usize = 1;

/// What the proposer handed to Raft, for monitoring: two relaxed adds per
/// gather (not per command).
#[derive(Default)]
pub(crate) struct ProposerStats {
    /// Log entries proposed (each holds 1 to 256 commands).
    pub entries: AtomicU64,
    /// Commands in them.
    pub commands: AtomicU64,
}

/// Where a batch's outcomes go: all of them, or why they are unknown.
pub(crate) type Reply = oneshot::Sender<Result<Vec<Outcome>, ForwardError>>;

/// One batch of commands and where its outcomes go.
pub(crate) struct Submission {
    pub commands: Vec<Command>,
    /// The Raft term when the batch was queued. A batch can wait here
    /// while this node loses leadership and wins it back; meanwhile its
    /// submitter may have given up and the batch been resent to another
    /// leader and applied. Proposed under a later term, its commands are
    /// therefore marked as resends, so the state machine checks their
    /// dedupe records instead of applying them a second time.
    pub term: u64,
    pub reply: Reply,
}

/// `wait_max` bounds how long a gather may hold up the next one (the
/// forwarding timeout). Runs until the node stops (or every sender is
/// dropped); batches still queued then are dropped, and their submitters
/// see "shutting down".
pub(crate) async fn run(
    raft: Raft,
    wait_max: Duration,
    mut queue: mpsc::Receiver<Submission>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<ProposerStats>,
) {
    let in_flight = Arc::new(Semaphore::new(GATHERS_IN_FLIGHT_MAX));
    loop {
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let first = tokio::select! {
            s = queue.recv() => match s {
                Some(s) => s,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let (gathered, commands_len) = gather(first, &mut queue);
        let term = raft.metrics().borrow_watched().current_term;
        let (commands, waiters) = prepare(gathered, term, commands_len);
        if commands.is_empty() {
            continue;
        }
        let proposals = match Proposal::split(commands) {
            Ok(p) => p,
            Err(e) => {
                // Never seen (every command type encodes); answered rather
                // than assumed away.
                fail_all(waiters, &format!("cannot encode a proposal: {e}"));
                continue;
            }
        };
        let sizes: Vec<usize> = proposals.iter().map(|p| p.commands().len()).collect();
        stats
            .entries
            .fetch_add(sizes.len() as u64, Ordering::Relaxed);
        stats
            .commands
            .fetch_add(sizes.iter().sum::<usize>() as u64, Ordering::Relaxed);
        match raft.client_write_many(proposals).await {
            // The results are awaited in a task that holds the in-flight
            // permit; the next gather fills up in the queue meanwhile.
            Ok(stream) => {
                tokio::spawn(async move {
                    let delivered = deliver(stream, sizes, waiters);
                    // Bounded: a leader that lost its quorum may never
                    // commit these, and later writes must not wait behind
                    // them forever. On the timeout the replies are dropped,
                    // which submitters read as "outcome unknown".
                    let _ = tokio::time::timeout(wait_max, delivered).await;
                    drop(permit);
                });
            }
            Err(fatal) => fail_all(waiters, &fatal.to_string()),
        }
    }
}

/// `first` and whatever else is queued now, up to `GATHER_COMMANDS_MAX`
/// commands (a submission is never split), with their command count.
fn gather(first: Submission, queue: &mut mpsc::Receiver<Submission>) -> (Vec<Submission>, usize) {
    let mut commands_len = first.commands.len();
    let mut gathered = vec![first];
    while commands_len < GATHER_COMMANDS_MAX {
        match queue.try_recv() {
            Ok(s) => {
                commands_len += s.commands.len();
                gathered.push(s);
            }
            Err(_) => break,
        }
    }
    (gathered, commands_len)
}

/// Answers every waiter with the same "unavailable" error.
fn fail_all<T>(waiters: Vec<(T, Reply)>, why: &str) {
    let e = ForwardError::Unavailable(why.to_string());
    for (_, reply) in waiters {
        let _ = reply.send(Err(e.clone()));
    }
}

/// The commands to propose under `term`, in order, and who waits for how
/// many of their outcomes. Submitters that gave up (timeout, closed
/// connection) already answered "outcome unknown": their batches are
/// dropped, since proposing them would only add work and a resend may be on
/// its way. Batches queued under another term become resends (see
/// [`Submission::term`]).
fn prepare(
    gathered: Vec<Submission>,
    term: u64,
    commands_len: usize,
) -> (Vec<Command>, Vec<(usize, Reply)>) {
    let mut commands = Vec::with_capacity(commands_len);
    let mut waiters = Vec::with_capacity(gathered.len());
    for mut s in gathered {
        if s.reply.is_closed() {
            continue;
        }
        if s.term != term {
            for c in &mut s.commands {
                c.retry = true;
            }
        }
        waiters.push((s.commands.len(), s.reply));
        commands.extend(s.commands);
    }
    (commands, waiters)
}

/// Waits for the gathered entries' results and answers each batch: its
/// outcomes if every entry holding its commands was applied, otherwise the
/// first error among those entries (the outcome is then unknown, and the
/// submitter retries with the same request ids).
async fn deliver<S, E>(mut stream: S, sizes: Vec<usize>, waiters: Vec<(usize, Reply)>)
where
    S: futures_util::Stream<Item = Result<Result<EntryResponse, ClientWriteError<TypeConfig>>, E>>
        + Unpin,
    E: std::fmt::Display,
{
    // One result per command, in order.
    let total: usize = sizes.iter().sum();
    let mut results: Vec<Result<Outcome, ForwardError>> = Vec::with_capacity(total);
    for expected in sizes {
        let entry = match stream.next().await {
            Some(Ok(Ok(resp))) if resp.response.len() == expected => Ok(resp.response),
            Some(Ok(Ok(resp))) => Err(ForwardError::Unavailable(format!(
                "entry {} answered {} outcomes for {expected} commands",
                resp.log_id,
                resp.response.len()
            ))),
            Some(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(ForwardError::NotLeader {
                leader: f.leader_id,
            }),
            Some(Ok(Err(e))) => Err(ForwardError::Unavailable(e.to_string())),
            Some(Err(fatal)) => Err(ForwardError::Unavailable(fatal.to_string())),
            None => Err(ForwardError::Unavailable(
                "the Raft core ended the proposal early; outcome unknown".into(),
            )),
        };
        match entry {
            Ok(outcomes) => results.extend(outcomes.into_iter().map(Ok)),
            Err(e) => results.extend(std::iter::repeat_n(Err(e), expected)),
        }
    }
    let mut results = results.into_iter();
    for (len, reply) in waiters {
        let mine: Result<Vec<Outcome>, ForwardError> = results.by_ref().take(len).collect();
        // A submitter that gave up (timeout, closed connection) is gone.
        let _ = reply.send(mine);
    }
}

type EntryResponse = openraft::raft::WriteResponse<TypeConfig>;

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::mutation::Limits;
    use strata_storage::{Mutation, Op};

    fn set(key: &str, value_len: usize) -> Command {
        Command {
            request: None,
            retry: false,
            limits: Limits {
                key_size_bytes_max: usize::MAX,
                value_size_bytes_max: usize::MAX,
            },
            mutation: Mutation {
                now_ms: 0,
                op: Op::Set {
                    key: key.as_bytes().to_vec().into(),
                    value: vec![0u8; value_len].into(),
                    condition: strata_storage::mutation::SetCondition::Always,
                    expiry: strata_storage::mutation::SetExpiry::Keep,
                    return_old: false,
                },
            },
        }
    }

    fn flushall() -> Command {
        let mut c = set("x", 0);
        c.mutation.op = Op::FlushAll;
        c
    }

    fn keys(p: &Proposal) -> Vec<String> {
        p.commands()
            .iter()
            .map(|c| match &c.mutation.op {
                Op::Set { key, .. } => String::from_utf8_lossy(key).into_owned(),
                Op::FlushAll => "FLUSHALL".into(),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn split_keeps_order_and_every_limit() {
        use crate::types::{PROPOSAL_COMMANDS_MAX, PROPOSAL_PAYLOAD_BYTES_MAX};
        let mut commands: Vec<Command> = (0..PROPOSAL_COMMANDS_MAX + 10)
            .map(|i| set(&format!("k{i}"), 1))
            .collect();
        commands.push(flushall());
        commands.push(set("big1", PROPOSAL_PAYLOAD_BYTES_MAX));
        commands.push(set("a", 10));
        commands.push(flushall());
        commands.push(flushall());
        commands.push(set("b", PROPOSAL_PAYLOAD_BYTES_MAX / 2));
        commands.push(set("c", PROPOSAL_PAYLOAD_BYTES_MAX / 2));
        let expected: Vec<String> = commands
            .iter()
            .map(|c| keys(&proposal(vec![c.clone()])).remove(0))
            .collect();
        let proposals = Proposal::split(commands).expect("commands encode");
        for p in &proposals {
            p.check().expect("every proposal keeps the invariant");
            let bytes: usize = p
                .commands()
                .iter()
                .map(|c| c.mutation.payload_size_bytes())
                .sum();
            assert!(p.commands().len() == 1 || bytes <= PROPOSAL_PAYLOAD_BYTES_MAX);
        }
        let flat: Vec<String> = proposals.iter().flat_map(keys).collect();
        assert_eq!(flat, expected, "order is kept across proposals");
        let shapes: Vec<Vec<String>> = proposals.iter().map(keys).collect();
        assert_eq!(shapes[0].len(), PROPOSAL_COMMANDS_MAX);
        assert_eq!(shapes[1].len(), 10);
        assert_eq!(shapes[2], ["FLUSHALL"]);
        // The large value does not fit with "a": each is alone.
        assert_eq!(shapes[3], ["big1"]);
        assert_eq!(shapes[4], ["a"]);
        assert_eq!(shapes[5], ["FLUSHALL"]);
        assert_eq!(shapes[6], ["FLUSHALL"]);
        // b and c together are exactly the byte limit (plus keys): split.
        assert_eq!(shapes[7], ["b"]);
        assert_eq!(shapes[8], ["c"]);
        assert_eq!(shapes.len(), 9);
    }

    #[test]
    fn prepare_drops_abandoned_batches_and_marks_stale_ones_as_resends() {
        let submission = |key: &str, term: u64| {
            let (reply, rx) = oneshot::channel();
            (
                Submission {
                    commands: vec![set(key, 1), set(key, 2)],
                    term,
                    reply,
                },
                rx,
            )
        };
        let (current, _rx1) = submission("current", 7);
        let (abandoned, rx2) = submission("abandoned", 7);
        drop(rx2);
        let (stale, _rx3) = submission("stale", 6);
        let (commands, waiters) = prepare(vec![current, abandoned, stale], 7, 6);
        let summary: Vec<(String, bool)> = commands
            .iter()
            .map(|c| match &c.mutation.op {
                Op::Set { key, .. } => (String::from_utf8_lossy(key).into_owned(), c.retry),
                _ => ("?".into(), c.retry),
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("current".to_string(), false),
                ("current".to_string(), false),
                ("stale".to_string(), true),
                ("stale".to_string(), true),
            ]
        );
        let lens: Vec<usize> = waiters.iter().map(|(n, _)| *n).collect();
        assert_eq!(lens, [2, 2]);
    }

    fn proposal(commands: Vec<Command>) -> Proposal {
        Proposal::new(commands).expect("commands encode")
    }

    #[test]
    fn check_refuses_what_split_never_makes() {
        assert!(proposal(vec![]).check().is_err());
        assert!(proposal(vec![set("a", 1), flushall()]).check().is_err());
        let too_many = vec![set("a", 1); crate::types::PROPOSAL_COMMANDS_MAX + 1];
        assert!(proposal(too_many).check().is_err());
        assert!(proposal(vec![flushall()]).check().is_ok());
    }

    #[test]
    fn a_proposal_travels_as_its_encoding_and_decodes_to_the_same_commands() {
        let p = proposal(vec![set("a", 3), set("b", 5), flushall()]);
        let raw = postcard::to_allocvec(&p).expect("encodes");
        // The payload is the encoding, length-prefixed, and nothing else.
        let inner = postcard::to_allocvec(p.commands()).expect("encodes");
        assert_eq!(raw.len(), inner.len() + 1, "a one-byte varint length");
        assert_eq!(&raw[1..], &inner[..]);
        assert_eq!(p.encoded_size_bytes(), inner.len());
        let back: Proposal = postcard::from_bytes(&raw).expect("decodes");
        assert_eq!(back, p);
        assert_eq!(back.into_commands(), p.commands().to_vec());
    }

    #[test]
    fn a_payload_that_is_not_a_list_of_commands_is_refused() {
        // Untrusted bytes (a log record, a frame): each truncation of a
        // valid payload, and bytes that claim more commands than they hold.
        let raw =
            postcard::to_allocvec(&proposal(vec![set("a", 3), set("b", 5)])).expect("encodes");
        // The outer length is one varint byte, which the edits below rely on.
        assert!(raw[0] < 127 && usize::from(raw[0]) == raw.len() - 1);
        for cut in 1..raw.len() {
            let mut shorter = raw[..cut].to_vec();
            // Keep the outer length honest so only the inner list is short.
            shorter[0] = (cut - 1) as u8;
            assert!(
                postcard::from_bytes::<Proposal>(&shorter).is_err(),
                "a payload cut at {cut} bytes was accepted"
            );
        }
        assert!(postcard::from_bytes::<Proposal>(&[2, 200, 1]).is_err());
        // A valid list of commands followed by anything else.
        let mut longer = raw.clone();
        longer.push(0);
        longer[0] += 1;
        assert!(
            postcard::from_bytes::<Proposal>(&longer).is_err(),
            "bytes left over after the commands were accepted"
        );
    }
}
