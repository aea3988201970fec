//! The openraft type configuration and the data a log entry carries.

use std::fmt;

use serde::{Deserialize, Serialize};
use strata_storage::mutation::Limits;
use strata_storage::{Mutation, Outcome, RequestId};

/// A node's id: a positive integer chosen by the operator (`--node-id`).
/// Never reused for a node that starts from an empty log (see openraft's
/// "node ids must not be reused").
pub type NodeId = u64;

/// One log entry's payload: one write command, exactly as the state machine
/// will apply it on every replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Set by the node that received the command from a client; a retry of
    /// the same command (after a leader change) carries the same id, and
    /// the state machine applies it at most once.
    pub request: Option<RequestId>,
    /// False on a command's first proposal, true on every resend. A first
    /// proposal cannot have been applied before, so the state machine looks
    /// up the dedupe record only for resends: one engine read saved per
    /// write (see `strata_storage::LogEntry::retry`).
    pub retry: bool,
    /// The proposer's limits travel with the command, so every replica
    /// accepts or refuses it alike even if their configs differ.
    pub limits: Limits,
    pub mutation: Mutation,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and values stay out of logs: they are user data.
        // The variant name only (Debug of the op would print the data).
        let op = format!("{:?}", self.mutation.op);
        let name = op.split([' ', '(', '{']).next().unwrap_or("?");
        write!(f, "Command({name})")
    }
}

openraft::declare_raft_types!(
    /// Strata's Raft types: u64 node ids, the peer address as node info,
    /// [`Command`] in, [`Outcome`] out.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
