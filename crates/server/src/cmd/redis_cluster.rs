//! Redis Cluster emulation: a Strata cluster presents itself to
//! cluster-aware clients (redis-py `RedisCluster`, ioredis `Cluster`, the
//! `redis` crate's cluster client, `redis-cli --cluster`) as one shard
//! that owns all 16384 slots, with the Raft leader as its master and every
//! other member (voters and learners) as its replicas.
//!
//! Nothing is sharded: the slot map exists only so that those clients
//! accept the topology. Keyed commands sent to a follower are not
//! redirected with `-MOVED`; the follower forwards them to the leader as it
//! does for any client (see the README, "Cluster-aware clients").

use std::fmt::Write as _;

use bytes::Bytes;
use strata_protocol::resp::Reply;
use strata_replication::{ClusterNode, ClusterStatus, NodeId};

/// Redis Cluster's slot count; Strata's one shard owns them all.
pub const SLOT_COUNT: u16 = 16384;

/// The reply when no leader is known (an election is under way): clients
/// treat `CLUSTERDOWN` as "retry later" and keep their old map meanwhile.
const NO_LEADER: &str = "CLUSTERDOWN The cluster is down: no leader elected yet";

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), Redis Cluster's
/// key hash.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A key's slot, as Redis computes it: when the key holds a `{...}` with at
/// least one byte between the first `{` and the next `}`, only those bytes
/// are hashed, so that related keys share a slot.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOT_COUNT
}

/// The 40-character Redis node name of a Strata node: its id in hex,
/// zero-padded, so that every node derives the same name for a member and
/// an operator can read the Strata id back from it.
pub fn node_name(id: NodeId) -> String {
    format!("{id:040x}")
}

/// One member as the emulation shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub id: NodeId,
    /// Client (RESP) address; `None` while this node has not learnt it.
    pub client_addr: Option<String>,
    /// Raft peer address: its port is shown as the cluster bus port.
    pub peer_addr: String,
    /// Whether this node could reach it (for CLUSTER NODES link state).
    pub reachable: bool,
}

/// The cluster as one Redis shard, from one node's point of view.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub me: NodeId,
    pub leader: Option<NodeId>,
    /// Raft term, shown as the config epoch.
    pub term: u64,
    /// Every member, by id.
    pub members: Vec<Member>,
}

impl View {
    /// From the node's status and the client addresses it has cached;
    /// `probe` also asks every other member directly (CLUSTER NODES wants
    /// link states; SLOTS and SHARDS stay fast on the cache).
    pub async fn gather(node: &ClusterNode, s: &ClusterStatus, probe: bool) -> View {
        let failed = node.failed_members();
        let mut members = Vec::with_capacity(s.nodes.len());
        for (id, peer) in &s.nodes {
            // The leader is asked only while its client address is not
            // known yet: clients call SLOTS on every refresh, and a probe
            // is a new peer connection and handshake each time (a storm of
            // them would use up the leader's peer connection slots).
            let wants_probe = probe
                || (Some(*id) == s.leader && *id != s.id && node.known_client_addr(*id).is_none());
            let (client_addr, reachable) = if *id == s.id {
                (Some(node.client_addr().to_string()), true)
            } else if wants_probe {
                match node.probe(*id).await {
                    Some(p) => (Some(p.client_addr), true),
                    None => (node.known_client_addr(*id), false),
                }
            } else {
                let known = node.known_client_addr(*id);
                let reachable = known.is_some();
                (known, reachable)
            };
            members.push(Member {
                id: *id,
                client_addr,
                peer_addr: peer.clone(),
                // The leader's judgement wins over a probe: a member that
                // answers a status probe but has not acknowledged the
                // leader lately is not a replica a client should use.
                reachable: reachable && !failed.contains(id),
            });
        }
        View {
            me: s.id,
            leader: s.leader,
            term: s.term,
            members,
        }
    }

    fn leader_member(&self) -> Option<&Member> {
        let leader = self.leader?;
        self.members
            .iter()
            .find(|m| m.id == leader && m.client_addr.is_some())
    }

    /// Every other member whose address is known, failed or not.
    fn replicas(&self) -> impl Iterator<Item = &Member> {
        let leader = self.leader;
        self.members
            .iter()
            .filter(move |m| Some(m.id) != leader && m.client_addr.is_some())
    }

    /// CLUSTER SLOTS: `[[0, 16383, master, replica...]]`.
    pub fn slots_reply(&self) -> Reply {
        let Some(leader) = self.leader_member() else {
            return Reply::error(NO_LEADER);
        };
        let mut range = vec![
            Reply::Integer(0),
            Reply::Integer(i64::from(SLOT_COUNT - 1)),
            slots_node(leader),
        ];
        // As Redis does: a failed replica is left out of SLOTS (SHARDS and
        // NODES show it, marked failed).
        range.extend(self.replicas().filter(|m| m.reachable).map(slots_node));
        Reply::Array(vec![Reply::Array(range)])
    }

    /// CLUSTER SHARDS: one shard, its slots and its nodes.
    pub fn shards_reply(&self) -> Reply {
        let Some(leader) = self.leader_member() else {
            return Reply::error(NO_LEADER);
        };
        let mut nodes = vec![shard_node(leader, "master")];
        nodes.extend(self.replicas().map(|m| shard_node(m, "replica")));
        let shard = Reply::Map(vec![
            (
                Reply::bulk("slots"),
                Reply::Array(vec![
                    Reply::Integer(0),
                    Reply::Integer(i64::from(SLOT_COUNT - 1)),
                ]),
            ),
            (Reply::bulk("nodes"), Reply::Array(nodes)),
        ]);
        Reply::Array(vec![shard])
    }

    /// CLUSTER NODES: one Redis-format line per member.
    pub fn nodes_text(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            out.push_str(&self.node_line(m));
            out.push('\n');
        }
        out
    }

    /// `<name> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv>
    /// <config-epoch> <link-state> [<slots>]`, as Redis writes it.
    pub fn node_line(&self, m: &Member) -> String {
        let is_master = self.leader == Some(m.id);
        let mut flags = Vec::with_capacity(4);
        if m.id == self.me {
            flags.push("myself");
        }
        flags.push(if is_master { "master" } else { "slave" });
        if !m.reachable {
            flags.push("fail");
        }
        let bus_port = port_of(&m.peer_addr);
        let addr = match &m.client_addr {
            Some(a) => format!("{a}@{bus_port}"),
            None => {
                flags.push("noaddr");
                format!(":0@{bus_port}")
            }
        };
        let master = match (is_master, self.leader) {
            (false, Some(l)) => node_name(l),
            _ => "-".to_string(),
        };
        let link = if m.reachable {
            "connected"
        } else {
            "disconnected"
        };
        let mut line = format!(
            "{} {addr} {} {master} 0 0 {} {link}",
            node_name(m.id),
            flags.join(","),
            self.term,
        );
        if is_master {
            let _ = write!(line, " 0-{}", SLOT_COUNT - 1);
        }
        line
    }
}

fn split_host_port(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

fn port_of(addr: &str) -> i64 {
    split_host_port(addr).1
}

fn slots_node(m: &Member) -> Reply {
    let (host, port) = split_host_port(m.client_addr.as_deref().unwrap_or_default());
    Reply::Array(vec![
        Reply::bulk(host.to_string()),
        Reply::Integer(port),
        Reply::bulk(node_name(m.id)),
    ])
}

fn shard_node(m: &Member, role: &'static str) -> Reply {
    let (host, port) = split_host_port(m.client_addr.as_deref().unwrap_or_default());
    let health = if m.reachable { "online" } else { "fail" };
    Reply::Map(vec![
        (Reply::bulk("id"), Reply::bulk(node_name(m.id))),
        (Reply::bulk("port"), Reply::Integer(port)),
        (Reply::bulk("ip"), Reply::bulk(host.to_string())),
        (Reply::bulk("endpoint"), Reply::bulk(host.to_string())),
        (Reply::bulk("role"), Reply::bulk(role)),
        (Reply::bulk("replication-offset"), Reply::Integer(0)),
        (Reply::bulk("health"), Reply::bulk(health)),
    ])
}

/// Redis's CLUSTER INFO fields, appended to Strata's own.
pub fn info_fields(s: &ClusterStatus, out: &mut String) {
    let assigned = if s.leader.is_some() { SLOT_COUNT } else { 0 };
    let _ = write!(
        out,
        "cluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_size:1\r\ncluster_current_epoch:{term}\r\ncluster_my_epoch:{term}\r\n",
        term = s.term,
    );
}

/// The `# Cluster` section of INFO.
pub fn info_section(enabled: bool, out: &mut String) {
    let _ = write!(
        out,
        "# Cluster\r\ncluster_enabled:{}\r\n",
        u8::from(enabled)
    );
}

/// ASKING: accepted and ignored, since no slot ever migrates.
pub fn asking(_: &mut super::Ctx<'_>, _: &[Bytes]) -> super::Action {
    Reply::ok().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn key_slot_matches_redis() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"{unclosed"), crc16(b"{unclosed") % SLOT_COUNT);
    }

    fn view() -> View {
        let member = |id: NodeId, reachable: bool| Member {
            id,
            client_addr: Some(format!("127.0.0.1:{}", 7300 + id)),
            peer_addr: format!("127.0.0.1:{}", 7400 + id),
            reachable,
        };
        View {
            me: 2,
            leader: Some(1),
            term: 7,
            members: vec![member(1, true), member(2, true), member(3, false)],
        }
    }

    #[test]
    fn node_lines_use_redis_format() {
        let v = view();
        let master = "0000000000000000000000000000000000000001";
        assert_eq!(
            v.node_line(&v.members[0]),
            format!("{master} 127.0.0.1:7301@7401 master - 0 0 7 connected 0-16383")
        );
        assert_eq!(
            v.node_line(&v.members[1]),
            format!(
                "0000000000000000000000000000000000000002 127.0.0.1:7302@7402 myself,slave {master} 0 0 7 connected"
            )
        );
        assert_eq!(
            v.node_line(&v.members[2]),
            format!(
                "0000000000000000000000000000000000000003 127.0.0.1:7303@7403 slave,fail {master} 0 0 7 disconnected"
            )
        );
        assert_eq!(v.nodes_text().lines().count(), 3);
    }

    #[test]
    fn unknown_address_is_noaddr() {
        let mut v = view();
        v.members[2].client_addr = None;
        assert!(
            v.node_line(&v.members[2])
                .starts_with("0000000000000000000000000000000000000003 :0@7403 slave,fail,noaddr ")
        );
    }

    #[test]
    fn slots_name_the_leader_then_replicas() {
        let Reply::Array(ranges) = view().slots_reply() else {
            panic!("not an array");
        };
        let Reply::Array(range) = &ranges[0] else {
            panic!("range not an array");
        };
        assert_eq!(range[0], Reply::Integer(0));
        assert_eq!(range[1], Reply::Integer(16383));
        assert_eq!(
            range[2],
            Reply::Array(vec![
                Reply::bulk("127.0.0.1"),
                Reply::Integer(7301),
                Reply::bulk(node_name(1)),
            ])
        );
        // Node 3 is failed: left out.
        assert_eq!(range.len(), 4);
        assert_eq!(
            range[3],
            Reply::Array(vec![
                Reply::bulk("127.0.0.1"),
                Reply::Integer(7302),
                Reply::bulk(node_name(2)),
            ])
        );
    }

    #[test]
    fn shards_mark_a_failed_replica() {
        let Reply::Array(shards) = view().shards_reply() else {
            panic!("not an array");
        };
        let Reply::Map(shard) = &shards[0] else {
            panic!("shard not a map");
        };
        let Reply::Array(nodes) = &shard[1].1 else {
            panic!("nodes not an array");
        };
        let health = |n: &Reply| match n {
            Reply::Map(fields) => fields
                .iter()
                .find(|(k, _)| *k == Reply::bulk("health"))
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        let healths: Vec<_> = nodes.iter().map(health).collect();
        assert_eq!(
            healths,
            vec![
                Some(Reply::bulk("online")),
                Some(Reply::bulk("online")),
                Some(Reply::bulk("fail")),
            ]
        );
    }

    #[test]
    fn no_leader_is_clusterdown() {
        let mut v = view();
        v.leader = None;
        assert!(matches!(v.slots_reply(), Reply::Error(e) if e.starts_with("CLUSTERDOWN")));
        assert!(matches!(v.shards_reply(), Reply::Error(e) if e.starts_with("CLUSTERDOWN")));
    }
}
