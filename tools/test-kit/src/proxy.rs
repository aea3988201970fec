//! A fault-injecting TCP proxy for the peer (Raft) links of a cluster.
//!
//! One listener per node. Every node's `--initial-cluster` names the
//! proxy listeners instead of the real peer addresses, so all peer traffic
//! passes through here; each listener forwards to its node's real peer
//! address ([`Proxy::set_target`], settable after the node has started).
//!
//! Peer connections begin with a 24-byte preamble: `b"STRATAP4"`, the
//! initiating node id (u64 LE, 0 = not a node) and the destination node id
//! (u64 LE). The proxy reads it to learn the link `from -> to`, forwards it
//! unchanged and then copies bytes both ways, applying the faults of the
//! link (the authentication handshake that follows the preamble is bytes
//! like any other to the proxy, and meets the link's faults too). A connection that does not start with the magic is forwarded too,
//! as link `0 -> <listener's node>`, which is never faulted.
//!
//! Faults are set per directed link `(from, to)`, where `from` is the node
//! that *opened* the connection:
//!
//! * **partition**: new connections `from -> to` are accepted and closed at
//!   once (after the preamble), and existing ones are cut. A symmetric
//!   partition sets both directions ([`Proxy::partition`]); setting one
//!   direction only models "A cannot reach B but B can reach A".
//! * **delay** with **jitter**: each chunk read from one side is written to
//!   the other `delay + uniform(0..=jitter)` ms later. Bytes of one
//!   connection stay in order (a later chunk never overtakes an earlier
//!   one), but chunks of different connections of the same node pair do
//!   overtake each other, which reorders messages across connections.
//!   Bytes flowing `from -> to` use the faults of `(from, to)`, the replies
//!   flowing back on the same connection use those of `(to, from)`.
//! * **loss**: for each chunk, with probability `loss`, a random prefix of
//!   it is forwarded and then the connection is cut (both sides), like a
//!   link that dies mid-message. TCP cannot lose bytes silently, so losing
//!   messages means losing connections.
//!
//! Threads: one accept thread per listener, and per connection one reader
//! and one writer thread per direction. Everything stops on
//! [`Proxy::shutdown`] or drop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// A node id as used in the preamble (0: not a node).
pub type NodeId = u64;

/// The preamble magic of a peer connection.
pub const PREAMBLE_MAGIC: &[u8; 8] = b"STRATAP4";
/// Magic + from id + to id.
pub const PREAMBLE_LEN: usize = 24;

/// Bound on reading the preamble of a new connection.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on connecting to the real peer address.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Size of one read; a chunk is the unit of delay and loss.
const CHUNK_BYTES: usize = 16 * 1024;

/// The faults of one directed link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    pub partitioned: bool,
    pub delay_ms: u64,
    pub jitter_ms: u64,
    /// Probability in `[0, 1]` that a chunk cuts its connection.
    pub loss: f64,
}

impl LinkFaults {
    pub fn is_clear(&self) -> bool {
        *self == LinkFaults::default()
    }
}

/// What the proxy has done, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub refused_partitioned: u64,
    pub cut_partition: u64,
    pub cut_loss: u64,
    pub delayed_chunks: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    refused_partitioned: AtomicU64,
    cut_partition: AtomicU64,
    cut_loss: AtomicU64,
    delayed_chunks: AtomicU64,
    bytes: AtomicU64,
}

struct Conn {
    from: NodeId,
    to: NodeId,
    /// Clones of both sockets, to cut the connection from outside.
    sockets: [TcpStream; 2],
}

impl Conn {
    fn cut(&self) {
        for socket in &self.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

struct State {
    targets: HashMap<NodeId, SocketAddr>,
    faults: HashMap<(NodeId, NodeId), LinkFaults>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    rng: Rng,
}

struct Inner {
    state: Mutex<State>,
    counters: Counters,
    stopping: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking proxy thread must not take the whole proxy down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self, from: NodeId, to: NodeId) -> LinkFaults {
        if from == 0 || to == 0 {
            return LinkFaults::default();
        }
        self.lock()
            .faults
            .get(&(from, to))
            .cloned()
            .unwrap_or_default()
    }
}

struct Listener {
    node: NodeId,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

/// The proxy: listeners, links, faults. See the module documentation.
pub struct Proxy {
    inner: Arc<Inner>,
    listeners: Vec<Listener>,
}

impl Proxy {
    /// A proxy with no listeners; `seed` drives the delay jitter and the
    /// loss points.
    pub fn new(seed: u64) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    targets: HashMap::new(),
                    faults: HashMap::new(),
                    conns: HashMap::new(),
                    next_conn: 0,
                    rng: Rng::new(seed),
                }),
                counters: Counters::default(),
                stopping: AtomicBool::new(false),
            }),
            listeners: Vec::new(),
        }
    }

    /// Opens the listener for `node` on `127.0.0.1:0` and returns its
    /// address: the address the other nodes must use for `node`.
    pub fn add_node(&mut self, node: NodeId) -> io::Result<SocketAddr> {
        self.add_node_on(node, "127.0.0.1:0".parse().expect("literal address"))
    }

    /// Like [`add_node`](Self::add_node) on a chosen address.
    pub fn add_node_on(&mut self, node: NodeId, bind: SocketAddr) -> io::Result<SocketAddr> {
        if self.listeners.iter().any(|l| l.node == node) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("node {node} already has a proxy listener"),
            ));
        }
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let inner = Arc::clone(&self.inner);
        let thread = std::thread::Builder::new()
            .name(format!("proxy-accept-{node}"))
            .spawn(move || accept_loop(inner, node, listener))?;
        self.listeners.push(Listener {
            node,
            addr,
            thread: Some(thread),
        });
        Ok(addr)
    }

    /// The listener address of `node`.
    pub fn listen_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.node == node)
            .map(|l| l.addr)
    }

    /// Where connections to `node`'s listener go (its real peer address).
    pub fn set_target(&self, node: NodeId, addr: SocketAddr) {
        self.inner.lock().targets.insert(node, addr);
    }

    /// The faults of the directed link `from -> to`.
    pub fn link_faults(&self, from: NodeId, to: NodeId) -> LinkFaults {
        self.inner.faults(from, to)
    }

    /// Replaces the faults of the directed link `from -> to`. Turning a
    /// partition on cuts the link's open connections.
    pub fn set_link_faults(&self, from: NodeId, to: NodeId, faults: LinkFaults) {
        let mut state = self.inner.lock();
        if faults.partitioned {
            let mut cut = 0;
            for conn in state.conns.values() {
                if conn.from == from && conn.to == to {
                    conn.cut();
                    cut += 1;
                }
            }
            self.inner
                .counters
                .cut_partition
                .fetch_add(cut, Ordering::Relaxed);
        }
        if faults.is_clear() {
            state.faults.remove(&(from, to));
        } else {
            state.faults.insert((from, to), faults);
        }
    }

    /// Changes the faults of `from -> to` with `f`.
    pub fn update_link(&self, from: NodeId, to: NodeId, f: impl FnOnce(&mut LinkFaults)) {
        let mut faults = self.link_faults(from, to);
        f(&mut faults);
        self.set_link_faults(from, to, faults);
    }

    /// Cuts (or, with `on = false`, restores) both directions between `a`
    /// and `b`.
    pub fn partition(&self, a: NodeId, b: NodeId, on: bool) {
        self.update_link(a, b, |f| f.partitioned = on);
        self.update_link(b, a, |f| f.partitioned = on);
    }

    /// Separates the nodes of `side` from every other node in `all`, both
    /// directions; links inside each side are untouched.
    pub fn split(&self, side: &[NodeId], all: &[NodeId]) {
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                self.partition(a, b, true);
            }
        }
    }

    /// Sets delay and jitter on every link between distinct nodes of
    /// `nodes` that touches one of `touching` (both directions).
    pub fn delay(&self, touching: &[NodeId], nodes: &[NodeId], delay_ms: u64, jitter_ms: u64) {
        self.for_links_touching(touching, nodes, |f| {
            f.delay_ms = delay_ms;
            f.jitter_ms = jitter_ms;
        });
    }

    /// Sets the loss probability on every link touching `touching`.
    pub fn loss(&self, touching: &[NodeId], nodes: &[NodeId], loss: f64) {
        self.for_links_touching(touching, nodes, |f| f.loss = loss);
    }

    fn for_links_touching(
        &self,
        touching: &[NodeId],
        nodes: &[NodeId],
        f: impl Fn(&mut LinkFaults),
    ) {
        for &a in nodes {
            for &b in nodes {
                if a != b && (touching.contains(&a) || touching.contains(&b)) {
                    self.update_link(a, b, &f);
                }
            }
        }
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.inner.lock().faults.clear();
    }

    /// Cuts every open connection (faults stay as they are).
    pub fn cut_all(&self) {
        for conn in self.inner.lock().conns.values() {
            conn.cut();
        }
    }

    /// Open connections per directed link.
    pub fn open_links(&self) -> HashMap<(NodeId, NodeId), usize> {
        let mut links = HashMap::new();
        for conn in self.inner.lock().conns.values() {
            *links.entry((conn.from, conn.to)).or_insert(0) += 1;
        }
        links
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            refused_partitioned: c.refused_partitioned.load(Ordering::Relaxed),
            cut_partition: c.cut_partition.load(Ordering::Relaxed),
            cut_loss: c.cut_loss.load(Ordering::Relaxed),
            delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, cuts every connection and joins the accept threads.
    pub fn shutdown(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for listener in &self.listeners {
            // Wake the blocking accept; it sees `stopping` and returns.
            let _ = TcpStream::connect_timeout(&listener.addr, Duration::from_secs(1));
        }
        for listener in &mut self.listeners {
            if let Some(thread) = listener.thread.take() {
                let _ = thread.join();
            }
        }
        self.cut_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(inner: Arc<Inner>, node: NodeId, listener: TcpListener) {
    for stream in listener.incoming() {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // EMFILE and the like: back off a little rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let inner = Arc::clone(&inner);
        let _ = std::thread::Builder::new()
            .name(format!("proxy-conn-{node}"))
            .spawn(move || handle_connection(inner, node, stream));
    }
}

/// Reads up to [`PREAMBLE_LEN`] bytes (fewer only at EOF).
fn read_preamble(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(PREAMBLE_TIMEOUT))?;
    let mut buf = vec![0u8; PREAMBLE_LEN];
    let mut got = 0;
    while got < PREAMBLE_LEN {
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    stream.set_read_timeout(None)?;
    Ok(buf)
}

/// `(from, to)` of a complete preamble, or `None` if it is not one.
pub fn parse_preamble(bytes: &[u8]) -> Option<(NodeId, NodeId)> {
    if bytes.len() < PREAMBLE_LEN || &bytes[..8] != PREAMBLE_MAGIC {
        return None;
    }
    let from = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let to = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    Some((from, to))
}

/// Builds a preamble (for tests and tools).
pub fn preamble(from: NodeId, to: NodeId) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..8].copy_from_slice(PREAMBLE_MAGIC);
    out[8..16].copy_from_slice(&from.to_le_bytes());
    out[16..24].copy_from_slice(&to.to_le_bytes());
    out
}

fn handle_connection(inner: Arc<Inner>, node: NodeId, mut client: TcpStream) {
    let _ = client.set_nodelay(true);
    let Ok(preamble) = read_preamble(&mut client) else {
        return;
    };
    if preamble.is_empty() {
        return;
    }
    let (from, to) = parse_preamble(&preamble).unwrap_or((0, node));
    if inner.faults(from, to).partitioned {
        inner
            .counters
            .refused_partitioned
            .fetch_add(1, Ordering::Relaxed);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let target = inner.lock().targets.get(&node).copied();
    let Some(target) = target else {
        return;
    };
    let Ok(mut upstream) = TcpStream::connect_timeout(&target, UPSTREAM_CONNECT_TIMEOUT) else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(&preamble).is_err() {
        return;
    }
    let (Ok(client_clone), Ok(upstream_clone)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let id = {
        let mut state = inner.lock();
        // A partition may have been set while we connected.
        if state.faults.get(&(from, to)).is_some_and(|f| f.partitioned) {
            drop(state);
            inner
                .counters
                .refused_partitioned
                .fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        let id = state.next_conn;
        state.next_conn += 1;
        state.conns.insert(
            id,
            Conn {
                from,
                to,
                sockets: [client_clone, upstream_clone],
            },
        );
        id
    };
    inner.counters.connections.fetch_add(1, Ordering::Relaxed);

    let (Ok(client_read), Ok(upstream_read)) = (client.try_clone(), upstream.try_clone()) else {
        unregister(&inner, id);
        return;
    };
    // Requests: client -> upstream, faults of (from, to). Replies on the
    // same connection: upstream -> client, faults of (to, from).
    let forward = {
        let inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("proxy-pump".into())
            .spawn(move || pump(inner, id, (from, to), client_read, upstream))
    };
    pump(Arc::clone(&inner), id, (to, from), upstream_read, client);
    if let Ok(handle) = forward {
        let _ = handle.join();
    }
    unregister(&inner, id);
}

fn unregister(inner: &Inner, id: u64) {
    if let Some(conn) = inner.lock().conns.remove(&id) {
        conn.cut();
    }
}

fn cut(inner: &Inner, id: u64) {
    if let Some(conn) = inner.lock().conns.get(&id) {
        conn.cut();
    }
}

/// Copies `src` to `dst` chunk by chunk with the faults of `link`, until
/// either side closes; then cuts the whole connection.
fn pump(inner: Arc<Inner>, id: u64, link: (NodeId, NodeId), mut src: TcpStream, dst: TcpStream) {
    // The writer side: chunks with their delivery time, written in order.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("proxy-write".into())
            .spawn(move || {
                let mut dst = dst;
                for (at, chunk) in rx {
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    if dst.write_all(&chunk).is_err() {
                        break;
                    }
                }
                cut(&inner, id);
            })
    };
    let Ok(writer) = writer else {
        cut(&inner, id);
        return;
    };
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let faults = inner.faults(link.0, link.1);
        if faults.partitioned {
            break;
        }
        let (lose_at, extra_ms) = {
            let mut state = inner.lock();
            let lose_at = (faults.loss > 0.0 && state.rng.chance(faults.loss))
                .then(|| state.rng.below(n as u64) as usize);
            let extra = if faults.jitter_ms > 0 {
                state.rng.range(0, faults.jitter_ms)
            } else {
                0
            };
            (lose_at, extra)
        };
        let delay = Duration::from_millis(faults.delay_ms + extra_ms);
        if !delay.is_zero() {
            inner
                .counters
                .delayed_chunks
                .fetch_add(1, Ordering::Relaxed);
        }
        inner.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let at = Instant::now() + delay;
        if let Some(prefix) = lose_at {
            inner.counters.cut_loss.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send((at, buf[..prefix].to_vec()));
            break;
        }
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    // Let the writer deliver what was already accepted (a lost chunk's
    // prefix included), then cut.
    drop(tx);
    let _ = writer.join();
    cut(&inner, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server that also reports the preamble it saw on each
    /// connection.
    fn echo_server() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut pre = [0u8; PREAMBLE_LEN];
                    if stream.read_exact(&mut pre).is_err() {
                        return;
                    }
                    let _ = tx.send(pre.to_vec());
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn connect(addr: SocketAddr, from: NodeId, to: NodeId) -> TcpStream {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&preamble(from, to)).unwrap();
        s
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut out = vec![0u8; msg.len()];
        s.read_exact(&mut out)?;
        Ok(out)
    }

    /// Waits (bounded) until `f` holds.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn preamble_roundtrip() {
        let p = preamble(3, 0x0102_0304_0506_0708);
        assert_eq!(&p[..8], b"STRATAP4");
        assert_eq!(p[8], 3);
        assert_eq!(p[16], 8);
        assert_eq!(parse_preamble(&p), Some((3, 0x0102_0304_0506_0708)));
        assert_eq!(parse_preamble(&p[..23]), None);
        assert_eq!(parse_preamble(b"XXXXXXXXaaaaaaaabbbbbbbb"), None);
    }

    #[test]
    fn forwards_preamble_and_data() {
        let (server, preambles) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        let mut s = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut s, b"hello").unwrap(), b"hello");
        let seen = preambles.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(seen, preamble(1, 2).to_vec());
        eventually("link registered", || {
            proxy.open_links().get(&(1, 2)) == Some(&1)
        });
        // A large transfer arrives intact.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = s.try_clone().unwrap();
        let sent = big.clone();
        let t = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let mut got = vec![0u8; big.len()];
        s.read_exact(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, big);
        assert_eq!(proxy.stats().connections, 1);
    }

    #[test]
    fn non_node_connections_pass_untouched() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        // Partition everything touching 2: the CLI (from 0) still passes.
        proxy.split(&[2], &[1, 2, 3]);
        let mut s = connect(addr, 0, 2);
        assert_eq!(roundtrip(&mut s, b"admin").unwrap(), b"admin");
    }

    #[test]
    fn partition_refuses_and_cuts() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        let mut s12 = connect(addr, 1, 2);
        let mut s32 = connect(addr, 3, 2);
        assert_eq!(roundtrip(&mut s12, b"a").unwrap(), b"a");
        assert_eq!(roundtrip(&mut s32, b"b").unwrap(), b"b");

        proxy.partition(1, 2, true);
        // The existing 1 -> 2 connection is cut: EOF or an error.
        let mut buf = [0u8; 1];
        let r = s12.read(&mut buf);
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        // A new one is closed right after the preamble.
        let mut again = connect(addr, 1, 2);
        let r = roundtrip(&mut again, b"x");
        assert!(r.is_err(), "{r:?}");
        assert!(proxy.stats().refused_partitioned >= 1);
        // 3 -> 2 is unaffected.
        assert_eq!(roundtrip(&mut s32, b"c").unwrap(), b"c");

        // One-way partition: 2 cannot open to ... here 3 -> 2 blocked only.
        proxy.partition(1, 2, false);
        proxy.update_link(3, 2, |f| f.partitioned = true);
        let mut fresh12 = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut fresh12, b"d").unwrap(), b"d");
        let mut fresh32 = connect(addr, 3, 2);
        assert!(roundtrip(&mut fresh32, b"e").is_err());

        proxy.heal();
        let mut healed = connect(addr, 3, 2);
        assert_eq!(roundtrip(&mut healed, b"f").unwrap(), b"f");
    }

    #[test]
    fn delay_applies_per_direction() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        let mut s = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut s, b"warm").unwrap(), b"warm");

        proxy.update_link(1, 2, |f| f.delay_ms = 150);
        let t = Instant::now();
        assert_eq!(roundtrip(&mut s, b"slow").unwrap(), b"slow");
        let one_way = t.elapsed();
        assert!(one_way >= Duration::from_millis(150), "{one_way:?}");

        proxy.update_link(2, 1, |f| f.delay_ms = 150);
        let t = Instant::now();
        assert_eq!(roundtrip(&mut s, b"slower").unwrap(), b"slower");
        let both = t.elapsed();
        assert!(both >= Duration::from_millis(300), "{both:?}");
        assert!(proxy.stats().delayed_chunks >= 3);

        proxy.heal();
        let t = Instant::now();
        assert_eq!(roundtrip(&mut s, b"fast").unwrap(), b"fast");
        assert!(t.elapsed() < Duration::from_millis(150));
    }

    #[test]
    fn jitter_keeps_order_within_a_connection() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(9);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        proxy.update_link(1, 2, |f| {
            f.delay_ms = 1;
            f.jitter_ms = 20;
        });
        let s = connect(addr, 1, 2);
        let mut writer = s.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            for i in 0..200u32 {
                writer.write_all(format!("{i}\n").as_bytes()).unwrap();
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let mut reader = io::BufReader::new(s);
        for i in 0..200u32 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), i.to_string());
        }
        t.join().unwrap();
    }

    #[test]
    fn jitter_reorders_across_connections() {
        // Two connections of the same link; with a large jitter, a message
        // sent later on one connection sometimes arrives before one sent
        // earlier on the other.
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(5);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        proxy.update_link(1, 2, |f| f.jitter_ms = 60);
        let mut reordered = 0;
        for _ in 0..10 {
            let mut a = connect(addr, 1, 2);
            let mut b = connect(addr, 1, 2);
            let start = Instant::now();
            a.write_all(b"1").unwrap();
            b.write_all(b"2").unwrap();
            let (tx, rx) = mpsc::channel();
            let tx2 = tx.clone();
            std::thread::spawn(move || {
                let mut x = [0u8; 1];
                a.read_exact(&mut x).unwrap();
                tx.send((start.elapsed(), 1)).unwrap();
            });
            std::thread::spawn(move || {
                let mut x = [0u8; 1];
                b.read_exact(&mut x).unwrap();
                tx2.send((start.elapsed(), 2)).unwrap();
            });
            let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            let _second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            if first.1 == 2 {
                reordered += 1;
            }
        }
        assert!(reordered > 0, "no reordering in 10 tries");
    }

    #[test]
    fn loss_cuts_connections() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(3);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        proxy.update_link(1, 2, |f| f.loss = 1.0);
        let mut s = connect(addr, 1, 2);
        s.write_all(b"0123456789").unwrap();
        // Whatever prefix got through comes back, then EOF.
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.len() < 10, "{got:?}");
        assert!(b"0123456789".starts_with(&got));
        assert_eq!(proxy.stats().cut_loss, 1);
        eventually("connection unregistered", || proxy.open_links().is_empty());
    }

    #[test]
    fn unset_target_closes_and_retargeting_works() {
        let (server_a, _pa) = echo_server();
        let (server_b, pb) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        let mut s = connect(addr, 1, 2);
        assert!(roundtrip(&mut s, b"x").is_err());
        proxy.set_target(2, server_a);
        let mut s = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut s, b"y").unwrap(), b"y");
        proxy.set_target(2, server_b);
        let mut s = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut s, b"z").unwrap(), b"z");
        assert!(pb.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn shutdown_stops_everything() {
        let (server, _pre) = echo_server();
        let mut proxy = Proxy::new(1);
        let addr = proxy.add_node(2).unwrap();
        proxy.set_target(2, server);
        let mut s = connect(addr, 1, 2);
        assert_eq!(roundtrip(&mut s, b"a").unwrap(), b"a");
        proxy.shutdown();
        let mut buf = [0u8; 1];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
}
