//! Runs commands one at a time for a front door with no connection of its
//! own: the HTTP API ([`crate::http`]). A request there is one command
//! (its arguments as RESP would carry them), run the way a connection's
//! handler ([`crate::connection`]) runs a request that arrived alone:
//! looked up in the same table, counted in the same statistics and slow
//! log, checked for arity and key sizes by the same `cmd::execute`, read
//! after the same read barrier (unless `stale`, as a READONLY connection),
//! written through the same write path (group commit, inline rounds,
//! Raft: a follower forwards to the leader), answered with the same
//! `Reply`. Only what needs a stream is missing: pipelining (every write
//! is committed before its reply), MULTI and per-connection state.
//!
//! Why not the handler itself: it is bound to a socket and a codec and
//! keeps a connection's state between requests; an HTTP request carries
//! none, and the HTTP listener owns its sockets.

use std::sync::Arc;

use bytes::Bytes;
use strata_protocol::resp::Reply;

use crate::cmd::slowlog::Client;
use crate::cmd::{self, Action, Ctx, Kind};
use crate::command_stats::Tally;
use crate::shared::{Session, Shared};
use crate::write_path::{PathError, Pending};

/// A command's reply, and the store's version that goes with it: for a
/// read, the published version loaded after its read barrier and before
/// it read (the state it read is that one or newer); for anything else,
/// the published version once it was answered.
pub struct Ran {
    pub reply: Reply,
    pub index: u64,
    /// The read barrier or the write path failed (no leader, no quorum,
    /// storage): `reply` says it as RESP would, this says it typed.
    pub failed: Option<PathError>,
}

pub struct Runner {
    shared: Arc<Shared>,
    session: Session,
    /// At most one write between `run`'s push and its commit.
    writes: Pending,
    tally: Tally,
}

impl Runner {
    /// `peer`: the client's address (the slow log shows it). `stale`:
    /// reads skip the read barrier (`?stale`, as READONLY on RESP).
    pub fn new(shared: Arc<Shared>, peer: String, stale: bool) -> Runner {
        let mut session = Session::new(shared.next_client_id(), peer);
        session.readonly = stale;
        Runner {
            writes: shared.write_path.pending(),
            tally: Tally::new(Arc::clone(&shared)),
            session,
            shared,
        }
    }

    /// Runs one command (`args[0]` is its name) to its reply.
    pub async fn run(&mut self, args: Vec<Bytes>) -> Ran {
        let spec = args.first().and_then(|name| cmd::lookup(name));
        self.tally
            .start(spec, false, false, &Client::from(&self.session));
        let Some(spec) = spec else {
            return self.answer(cmd::unknown_command(&args), None);
        };
        if spec.kind == Kind::Read
            && self.shared.write_path.reads_need_barrier()
            && !self.session.readonly
            && let Err(e) = self.shared.write_path.read_barrier().await
        {
            return self.answer(cmd::path_error(&e), Some(e));
        }
        let read_index = self.shared.store.published_version();
        let mut ctx = Ctx {
            shared: &self.shared,
            session: &mut self.session,
            now_ms: strata_storage::now_ms(),
        };
        let action = cmd::execute(spec, &mut ctx, &args);
        self.tally.ran(args, &action, &Client::from(&self.session));
        let (reply, failed) = self.act(action).await;
        let mut ran = self.answer(reply, failed);
        if spec.kind == Kind::Read {
            ran.index = read_index;
        }
        ran
    }

    /// Does what the command asked for, as the handler's `act` does for
    /// a request with nothing pipelined around it.
    async fn act(&mut self, action: Action) -> (Reply, Option<PathError>) {
        let path = &self.shared.write_path;
        match action {
            Action::Reply(r) | Action::Close(r) => (r, None),
            Action::Write(m) => {
                let m = match crate::embedding::plan(&self.shared, m) {
                    Ok(m) => m,
                    Err(job) => match crate::embedding::run(&self.shared, job).await {
                        Ok(m) => m,
                        Err(refusal) => return (refusal, None),
                    },
                };
                self.writes.push(m);
                path.commit(&mut self.writes).await;
                let mut outcomes = self.writes.outcomes();
                let first = outcomes.next();
                debug_assert!(outcomes.next().is_none(), "one write, one outcome");
                drop(outcomes);
                match first {
                    Some(Ok(outcome)) => (cmd::write_reply(Ok(outcome)), None),
                    Some(Err(e)) => (cmd::path_error(&e), Some(e)),
                    None => (Reply::error("ERR no outcome for a write"), None),
                }
            }
            Action::Cluster(call) => (cmd::cluster::run(&self.shared, call).await, None),
            Action::Backup(call) => (cmd::backup::run(&self.shared, call).await, None),
            Action::Exec(plan) => {
                let mutation = match crate::embedding::plan(&self.shared, plan.mutation) {
                    Ok(m) => m,
                    Err(job) => match crate::embedding::run(&self.shared, job).await {
                        Ok(m) => m,
                        Err(refusal) => return (refusal, None),
                    },
                };
                let result = path.write(&mut self.writes, mutation).await;
                (cmd::tx::exec_reply(plan.replies, result), None)
            }
            Action::Search(call) => (
                cmd::search::run(&self.shared, &mut self.writes, call).await,
                None,
            ),
            Action::Embed(job) => match crate::embedding::run(&self.shared, job).await {
                Ok(m) => {
                    self.writes.push(m);
                    path.commit(&mut self.writes).await;
                    match self.writes.outcomes().next() {
                        Some(Ok(outcome)) => (cmd::write_reply(Ok(outcome)), None),
                        Some(Err(e)) => (cmd::path_error(&e), Some(e)),
                        None => (Reply::error("ERR no outcome for a write"), None),
                    }
                }
                Err(refusal) => (refusal, None),
            },
        }
    }

    fn answer(&mut self, reply: Reply, failed: Option<PathError>) -> Ran {
        self.tally.replied(&reply, &Client::from(&self.session));
        Ran {
            reply,
            index: self.shared.store.published_version(),
            failed,
        }
    }
}

impl Drop for Runner {
    /// Its statistics are added into the server's (a connection does it
    /// before it waits for bytes).
    fn drop(&mut self) {
        self.tally.flush(Some(&Client::from(&self.session)));
    }
}
