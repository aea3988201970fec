//! Peers prove they belong; clients from other hosts meet protected mode.
//! Real `strata server` processes on loopback (tests/common), with the
//! peer protocol spoken by hand where a stranger would (tests/common/peer.rs):
//!
//! * a 3-node cluster with a cluster secret replicates and fails over;
//! * a 4th node with the wrong secret cannot join, and both sides log why;
//! * an admin frame from a peer that did not authenticate (no handshake,
//!   a v3 preamble, a frame instead of a proof, a wrong secret) is refused
//!   and membership stays as it was;
//! * peers declaring 1 GiB frames, before and after authenticating, cost
//!   the node almost no memory (the finding: 50 such connections took the
//!   node's virtual memory from 1.4 GB to 74.6 GB);
//! * a node on a non-loopback peer address needs a secret or an explicit
//!   `--cluster-secret-file none`;
//! * protected mode refuses a client from 127.0.0.2 on a server bound to
//!   0.0.0.0, serves 127.0.0.1, and `--protected-mode no` serves both.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::peer::{self, ClusterSecret};
use common::{TestServer, strata_bin};
use strata_replication::auth::{OPEN_BYTES, PROOF_BYTES};

/// A 3-node cluster whose nodes share a generated secret.
fn secret_cluster() -> (Cluster, u64) {
    let mut config = config(3);
    config.cluster_secret = true;
    start(config)
}

fn secret_of(cluster: &Cluster) -> ClusterSecret {
    let path = cluster.config.secret_file.as_ref().expect("a secret file");
    ClusterSecret::read_file(path).expect("read the cluster secret")
}

fn voters(node: &Node) -> Vec<u64> {
    let info = node.cluster_info().expect("CLUSTER INFO");
    let mut ids: Vec<u64> = info["cluster_voters"]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("voter id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// Waits (bounded) until `node`'s log contains `needle`.
fn wait_for_log(node: &Node, needle: &str) {
    wait_for(
        &format!("{needle:?} in node {}'s log", node.id),
        LEADER_TIMEOUT,
        || node.log().contains(needle).then_some(()),
    );
}

#[test]
fn a_cluster_with_a_secret_replicates_and_fails_over() {
    let (mut cluster, leader) = secret_cluster();
    set(cluster.node(leader), "k", "before");
    let expected = vec![("k".to_string(), "before".to_string())];
    for id in others(&cluster, leader) {
        wait_local_data(cluster.node(id), &expected, CATCH_UP_TIMEOUT);
    }
    cluster.node_mut(leader).kill9();
    let new_leader = must!(
        cluster,
        cluster.wait_for_new_leader(leader, LEADER_TIMEOUT),
        "a new leader"
    );
    set(cluster.node(new_leader), "k", "after");
    must!(cluster, cluster.node_mut(leader).restart(), "restart");
    let expected = vec![("k".to_string(), "after".to_string())];
    wait_local_data(cluster.node(leader), &expected, CATCH_UP_TIMEOUT);
    for id in cluster.ids() {
        let log = cluster.node(id).log();
        assert!(
            !log.contains("cluster secret") && !log.contains("peer connection refused"),
            "node {id} refused a member:\n{}",
            cluster.node(id).log_tail(40)
        );
    }
}

#[test]
fn a_node_with_the_wrong_secret_cannot_join_and_both_sides_log_it() {
    let (mut cluster, leader) = secret_cluster();
    let wrong = cluster.base_dir().join("wrong-secret");
    strata_test_kit::cluster::write_secret_file(&wrong, "not-the-cluster-secret-at-all").unwrap();
    let via = cluster.node(leader).peer_addr.to_string();
    let args = [
        "--join",
        &via,
        "--join-as",
        "voter",
        "--heartbeat-ms",
        "50",
        "--election-timeout-ms",
        "300",
        "--cluster-secret-file",
        &wrong.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    must!(
        cluster,
        cluster.new_node(4, args).and_then(|n| n.start()),
        "start node 4"
    );
    wait_for_log(cluster.node(4), "peer connection refused");
    wait_for_log(
        cluster.node(leader),
        "refused a peer connection: it did not prove the cluster secret",
    );
    // Still refused after several attempts, and never a member.
    wait_for("more join attempts", LEADER_TIMEOUT, || {
        (cluster.node(4).log().matches("join failed").count() >= 3).then_some(())
    });
    assert_eq!(voters(cluster.node(leader)), vec![1, 2, 3]);
    let members = cluster_nodes(cluster.node(leader));
    assert!(members.iter().all(|m| m.0 != 4), "{members:?}");
    assert!(!cluster.node(4).log().contains("joined the cluster"));
}

#[test]
fn an_anonymous_admin_frame_is_refused_and_changes_nothing() {
    let (cluster, leader) = secret_cluster();
    let node = cluster.node(leader);
    let victim = others(&cluster, leader)[0] as u8;
    let remove = peer::frame(&peer::admin_remove(victim));
    let add = peer::frame(&peer::admin_add_learner(9, "127.0.0.1:1"));

    // The finding's attack: the old preamble, then admin frames at once.
    let mut s = peer::connect(node.peer_listen);
    let mut bytes = b"STRATAP3".to_vec();
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&node.id.to_le_bytes());
    bytes.extend_from_slice(&remove);
    bytes.extend_from_slice(&add);
    bytes.extend_from_slice(&remove);
    // Exactly what the node reads before judging the preamble: a close
    // with input left unread would be a reset, which may drop the answer.
    bytes.truncate(OPEN_BYTES);
    s.write_all(&bytes).unwrap();
    peer::closed_by_peer(&mut s).expect("v3 preamble: closed without an answer");

    // The current preamble and a nonce, then frames where the proof goes.
    let mut s = peer::connect(node.peer_listen);
    let mut bytes = strata_replication::wire::preamble(0, node.id).to_vec();
    bytes.extend_from_slice(&[7u8; 32]);
    for _ in 0..4 {
        bytes.extend_from_slice(&remove);
        bytes.extend_from_slice(&add);
    }
    bytes.truncate(OPEN_BYTES + PROOF_BYTES);
    s.write_all(&bytes).unwrap();
    let mut hello_and_verdict = [0u8; 40 + 33];
    s.read_exact(&mut hello_and_verdict).unwrap();
    assert_eq!(hello_and_verdict[40..], [0u8; 33], "refused");
    peer::closed_by_peer(&mut s).expect("frames as a proof: closed");

    // A well-formed handshake under the wrong secret.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "a-secret-that-is-not-the-one").unwrap();
    let wrong = ClusterSecret::read_file(&wrong).unwrap();
    let mut s = peer::connect(node.peer_listen);
    assert!(!peer::handshake(&mut s, &wrong, 0, node.id).unwrap());
    let _ = s.write_all(&remove);
    peer::closed_by_peer(&mut s).expect("wrong secret: closed");

    // Control: the same hand-made handshake with the right secret is
    // served, so the refusals above are the secret's doing.
    let mut s = peer::connect(node.peer_listen);
    assert!(peer::handshake(&mut s, &secret_of(&cluster), 0, node.id).unwrap());
    s.write_all(&peer::frame(&peer::STATUS_REQUEST)).unwrap();
    let status = peer::read_frame(&mut s).unwrap();
    assert_eq!(status[0], peer::STATUS_RESPONSE_VARIANT, "{status:?}");

    wait_for_log(node, "refused a peer connection");
    assert_eq!(voters(node), vec![1, 2, 3]);
    let members = cluster_nodes(node);
    assert_eq!(members.len(), 3, "{members:?}");
    set(node, "still", "writable");
}

/// `VmSize` of a process, in KiB.
fn vm_size_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize")
}

/// 1 GiB as a frame length.
const GIB_FRAME: [u8; 4] = (1u32 << 30).to_le_bytes();
const CONNECTIONS: usize = 50;
/// Far above 50 connections' buffers (64 KiB each, plus a 64 KiB step),
/// far below the 50 GiB that allocating the declared lengths would take.
const GROWTH_KIB_MAX: u64 = 512 * 1024;

/// Opens `CONNECTIONS` peer connections with `open`, lets `settle` wait
/// until the node has read what they sent, and returns the growth of the
/// node's virtual memory meanwhile.
fn vm_growth_kib(
    node: &Node,
    open: impl Fn() -> TcpStream,
    settle: impl FnOnce(&mut Vec<TcpStream>),
) -> u64 {
    let pid = node.pid().expect("node running");
    let before = vm_size_kib(pid);
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS).map(|_| open()).collect();
    settle(&mut conns);
    let after = vm_size_kib(pid);
    drop(conns);
    after.saturating_sub(before)
}

#[test]
fn peers_declaring_huge_frames_cost_almost_no_memory() {
    // Before the handshake: a secret cluster; strangers declare a 1 GiB
    // frame where the proof goes.
    let (cluster, leader) = secret_cluster();
    let node = cluster.node(leader);
    let open = || {
        let mut s = peer::connect(node.peer_listen);
        let mut bytes = strata_replication::wire::preamble(0, node.id).to_vec();
        bytes.extend_from_slice(&[1u8; 32]);
        // Where the proof goes: a 1 GiB frame's length and first bytes.
        bytes.extend_from_slice(&GIB_FRAME);
        bytes.extend_from_slice(&[0u8; PROOF_BYTES - 4]);
        s.write_all(&bytes).unwrap();
        s
    };
    // Every connection is answered (refused) and closed: the node has
    // read all it will ever read from them.
    let settle = |conns: &mut Vec<TcpStream>| {
        for s in conns.iter_mut() {
            let mut hello_and_verdict = [0u8; 40 + 33];
            s.read_exact(&mut hello_and_verdict).unwrap();
            assert_eq!(hello_and_verdict[40..], [0u8; 33], "refused");
            peer::closed_by_peer(s).expect("cut off");
        }
    };
    let growth = vm_growth_kib(node, open, settle);
    println!("{CONNECTIONS} unauthenticated 1 GiB frames: VmSize grew {growth} KiB");
    assert!(growth < GROWTH_KIB_MAX, "VmSize grew {growth} KiB");
    drop(cluster);

    // After the handshake (no secret on loopback: anyone can pass it), a
    // declared 1 GiB frame with 100 bytes of it sent: the node must wait
    // for the rest with a buffer the size of what arrived.
    let (cluster, leader) = start(config(1));
    let node = cluster.node(leader);
    let open = || {
        let mut s = peer::connect(node.peer_listen);
        assert!(peer::handshake(&mut s, &ClusterSecret::none(), 0, node.id).unwrap());
        let mut bytes = GIB_FRAME.to_vec();
        bytes.extend_from_slice(&[5u8; 100]);
        s.write_all(&bytes).unwrap();
        s
    };
    // A status request on a connection opened after them is answered
    // once the node has served the connections before it; then a pause
    // for stragglers. (A node that allocated declared lengths would do so
    // as soon as it read the 4 length bytes.)
    let settle = |_: &mut Vec<TcpStream>| {
        let mut probe = peer::connect(node.peer_listen);
        assert!(peer::handshake(&mut probe, &ClusterSecret::none(), 0, node.id).unwrap());
        probe
            .write_all(&peer::frame(&peer::STATUS_REQUEST))
            .unwrap();
        peer::read_frame(&mut probe).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    };
    let growth = vm_growth_kib(node, open, settle);
    println!("{CONNECTIONS} authenticated 1 GiB frames, 100 bytes sent: VmSize grew {growth} KiB");
    assert!(growth < GROWTH_KIB_MAX, "VmSize grew {growth} KiB");
    set(node, "still", "serving");
}

/// Runs `strata server` with `args` until it exits (bounded); returns its
/// exit code and stderr. Panics if it prints a ready line instead.
fn run_until_exit(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(strata_bin())
        .arg("server")
        .args(["--listen", "127.0.0.1:0", "--text-listen", "off"])
        .args(["--http-listen", "off"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env_remove("STRATA_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata server {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    (status.code().unwrap_or(-1), err)
}

#[test]
fn a_non_loopback_peer_address_needs_a_secret_or_an_explicit_none() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ["--node-id", "1", "--initial-cluster", "1=127.0.0.1:1"];
    let exposed = [&cluster[..], &["--peer-listen", "0.0.0.0:0"]].concat();
    let (code, err) = run_until_exit(dir.path(), &exposed);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not a loopback address")
            && err.contains("--cluster-secret-file PATH")
            && err.contains("--cluster-secret-file none"),
        "{err}"
    );

    let none = [&exposed[..], &["--cluster-secret-file", "none"]].concat();
    let mut server = TestServer::start_with(&none);
    let reply = call_retry(server.resp_addr, &["SET", "a", "1"], LEADER_TIMEOUT);
    assert_eq!(reply, Reply::ok());
    assert!(
        server
            .log()
            .contains("no cluster secret (--cluster-secret-file none)"),
        "{}",
        server.log()
    );
    server.stop_graceful();

    let secret = dir.path().join("secret");
    strata_test_kit::cluster::write_secret_file(
        &secret,
        &strata_test_kit::cluster::random_secret(),
    )
    .unwrap();
    let secret = secret.display().to_string();
    let with_secret = [&exposed[..], &["--cluster-secret-file", &secret]].concat();
    let server = TestServer::start_with(&with_secret);
    assert!(
        !server.log().contains("no cluster secret"),
        "{}",
        server.log()
    );
}

/// A TCP connection to `to` from the source address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{from}:0").parse().unwrap();
    socket
        .bind(&source.into())
        .expect("bind the source address");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(10))
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// The first line a client from `from` gets after sending `request`.
fn first_line(from: &str, to: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect_from(from, to);
    stream.write_all(request).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// The loopback address with the port a wildcard listener got.
fn on_loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

#[test]
fn protected_mode_refuses_other_hosts_on_a_wildcard_listener() {
    let listen = ["--listen", "0.0.0.0:0", "--text-listen", "0.0.0.0:0"];
    let server = TestServer::start_with(&listen);
    let resp = on_loopback(server.resp_addr);
    let text = on_loopback(server.text_addr.expect("text listener"));
    let ping = b"*1\r\n$4\r\nPING\r\n";

    // Nothing sent first: the server closes at once, and unread input
    // would turn its close into a reset that may discard the answer.
    let denied = first_line("127.0.0.2", resp, b"");
    assert!(
        denied.starts_with("-DENIED Strata is running in protected mode because")
            && denied.contains("--protected-mode no"),
        "{denied:?}"
    );
    let mut stream = connect_from("127.0.0.2", resp);
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    assert!(all.starts_with(b"-DENIED"), "then closed");
    let denied = first_line("127.0.0.2", text, b"");
    assert!(
        denied.starts_with("ERROR: DENIED Strata is running in protected mode"),
        "{denied:?}"
    );
    assert_eq!(first_line("127.0.0.1", resp, ping), "+PONG\r\n");
    let config_get = b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$14\r\nprotected-mode\r\n";
    let mut stream = connect_from("127.0.0.1", resp);
    stream.write_all(config_get).unwrap();
    let expected = b"*2\r\n$14\r\nprotected-mode\r\n$3\r\nyes\r\n";
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected)
    );
    assert!(
        server
            .log()
            .contains("protected mode: this non-loopback listener"),
        "{}",
        server.log()
    );

    let open = [&listen[..], &["--protected-mode", "no"]].concat();
    let server = TestServer::start_with(&open);
    let resp = on_loopback(server.resp_addr);
    assert_eq!(first_line("127.0.0.2", resp, ping), "+PONG\r\n");
    assert_eq!(first_line("127.0.0.1", resp, ping), "+PONG\r\n");
    assert!(
        server
            .log()
            .contains("protected mode is off on a non-loopback listener"),
        "{}",
        server.log()
    );

    // A loopback listener is not guarded: 127.0.0.2 reaches 127.0.0.1.
    let server = TestServer::start();
    assert_eq!(first_line("127.0.0.2", server.resp_addr, ping), "+PONG\r\n");
}
