//! The openraft type configuration and the data a log entry carries.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strata_storage::mutation::Limits;
use strata_storage::{Mutation, Outcome, RequestId};

/// A node's id: a positive integer chosen by the operator (`--node-id`).
/// Never reused for a node that starts from an empty log (see openraft's
/// "node ids must not be reused").
pub type NodeId = u64;

/// One write command, exactly as the state machine will apply it on every
/// replica. Log entries carry them in [`Proposal`]s.
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

/// Commands in one proposal at most. Why group at all: most of a
/// replicated write's cost is per log entry (openraft's bookkeeping, the
/// log append, the AppendEntries payload, the applied mark), so a
/// connection's pipeline of 16 SETs costs about one entry instead of 16.
pub const PROPOSAL_COMMANDS_MAX: usize = 256;
/// Payload bytes (keys and values) in one proposal at most, so entries stay
/// small enough to batch into AppendEntries frames; a single larger command
/// is a proposal of its own.
pub const PROPOSAL_PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// One log entry's payload: write commands proposed together, in order.
///
/// Invariant (checked by [`Proposal::check`] where entries come off the log
/// or the network): a proposal is not empty, holds at most
/// [`PROPOSAL_COMMANDS_MAX`] commands, and a FLUSHALL is alone in its
/// proposal. Every replica applies a proposal's commands in one engine
/// batch, with the entry's applied mark, so an entry is applied entirely or
/// not at all; FLUSHALL clears the keyspace outside any batch, which is why
/// it never shares an entry.
///
/// Encoded once: a proposal keeps its commands' postcard encoding next to
/// the commands, and serializes as those bytes. Why: the leader writes an
/// entry to its log and sends it to every follower, and openraft clones an
/// entry each time it reads one; with the commands themselves as the
/// payload, each of those was a deep copy and a fresh encoding (a fifth of
/// the leader's CPU under pipelined SETs, docs/perf-log/2026-11-24-cluster-encoded-once.md).
/// Now a clone is two reference counts and a serialization is a copy of
/// bytes. Both halves are immutable and set together: `encoded` is the
/// commands' encoding for a proposal made here, and for one read from the
/// log or the network it is the bytes received, which decode to exactly
/// `commands` (see [`Proposal::decode`]); every replica passes those bytes
/// on unchanged and decodes them alike.
#[derive(Clone)]
pub struct Proposal {
    commands: Arc<Vec<Command>>,
    /// Decodes to exactly `commands`.
    encoded: Bytes,
}

impl Proposal {
    /// Encodes `commands` (no limits are checked here; see [`Proposal::check`]).
    pub fn new(commands: Vec<Command>) -> Result<Proposal, postcard::Error> {
        let encoded = Bytes::from(postcard::to_allocvec(&commands)?);
        Ok(Proposal {
            commands: Arc::new(commands),
            encoded,
        })
    }

    /// Decodes a payload read from the log or the network. The bytes are
    /// untrusted: anything that is not exactly a list of commands (bytes
    /// left over included) is an error.
    pub fn decode(encoded: Bytes) -> Result<Proposal, postcard::Error> {
        let (commands, rest): (Vec<Command>, &[u8]) = postcard::take_from_bytes(&encoded)?;
        if !rest.is_empty() {
            // postcard's own error for input that does not match the type.
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(Proposal {
            commands: Arc::new(commands),
            encoded,
        })
    }

    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The commands, owned: moved out if this is the last handle, copied
    /// otherwise (a key and a value are reference-counted, so a copy is
    /// cheap).
    pub fn into_commands(self) -> Vec<Command> {
        Arc::unwrap_or_clone(self.commands)
    }

    /// The payload's encoded size: what it adds to a log record or a frame.
    pub fn encoded_size_bytes(&self) -> usize {
        self.encoded.len()
    }

    pub fn check(&self) -> Result<(), String> {
        let n = self.commands.len();
        if n == 0 || n > PROPOSAL_COMMANDS_MAX {
            return Err(format!(
                "a log entry holds {n} commands (1 to {PROPOSAL_COMMANDS_MAX} allowed)"
            ));
        }
        if n > 1
            && self
                .commands
                .iter()
                .any(|c| matches!(c.mutation.op, strata_storage::Op::FlushAll))
        {
            return Err("a log entry holds FLUSHALL with other commands".into());
        }
        Ok(())
    }

    /// Splits a pipeline of commands into proposals, in order, within the
    /// limits above, and encodes each.
    pub fn split(commands: Vec<Command>) -> Result<Vec<Proposal>, postcard::Error> {
        let mut out = Vec::new();
        let mut current: Vec<Command> = Vec::new();
        let mut current_bytes = 0usize;
        for command in commands {
            let bytes = command.mutation.payload_size_bytes();
            let alone = matches!(command.mutation.op, strata_storage::Op::FlushAll);
            let full = current.len() >= PROPOSAL_COMMANDS_MAX
                || current_bytes.saturating_add(bytes) > PROPOSAL_PAYLOAD_BYTES_MAX;
            if !current.is_empty() && (alone || full) {
                out.push(Proposal::new(std::mem::take(&mut current))?);
                current_bytes = 0;
            }
            current.push(command);
            current_bytes = current_bytes.saturating_add(bytes);
            if alone {
                out.push(Proposal::new(std::mem::take(&mut current))?);
                current_bytes = 0;
            }
        }
        if !current.is_empty() {
            out.push(Proposal::new(current)?);
        }
        Ok(out)
    }
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Proposal) -> bool {
        // Equal commands, equal effects. The bytes can differ: a decoded
        // proposal keeps the bytes as received, which need not be the
        // canonical encoding (postcard accepts over-long varints).
        self.commands == other.commands
    }
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proposal")
            .field("commands", &self.commands)
            .finish()
    }
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Proposal, D::Error> {
        struct Encoded;
        impl<'de> Visitor<'de> for Encoded {
            type Value = Proposal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded list of commands")
            }
            fn visit_bytes<E: de::Error>(self, raw: &[u8]) -> Result<Proposal, E> {
                Proposal::decode(Bytes::copy_from_slice(raw)).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, raw: Vec<u8>) -> Result<Proposal, E> {
                Proposal::decode(Bytes::from(raw)).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(Encoded)
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.commands.as_slice() {
            [one] => write!(f, "{one}"),
            many => write!(f, "Proposal({} commands)", many.len()),
        }
    }
}

openraft::declare_raft_types!(
    /// Strata's Raft types: u64 node ids, the peer address as node info,
    /// a [`Proposal`] in, one [`Outcome`] per command out.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
