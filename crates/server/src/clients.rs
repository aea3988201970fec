//! The registry of client connections: what CLIENT LIST, CLIENT INFO and
//! CLIENT KILL see, for RESP and text-protocol connections alike.
//!
//! Cost: a connection registers once (one lock of the registry when it
//! opens, one when it closes, through [`Registered`]'s drop, so every exit
//! path unregisters). Per request, nothing is locked: the command being run
//! is one relaxed store (`set_cmd`), and the rest (idle time, query buffer,
//! MULTI state, flags) is published with relaxed stores once per batch
//! of requests, when the connection has handled what it read and is about
//! to send the replies and wait for more ([`ClientInfo::at_wait`]). Names (CLIENT SETNAME, SETINFO) change rarely and sit behind
//! a per-connection mutex.
//!
//! CLIENT KILL sets a connection's kill switch and wakes it: a connection
//! watches the switch wherever it waits on its client (for bytes, or for
//! its client to read replies), so it closes promptly even while idle or
//! stuck on a client that does not read. The switch is an atomic flag and
//! an `AtomicWaker`: watching it registers a waker with atomics only, no
//! lock per wait.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use atomic_waker::AtomicWaker;
use bytes::Bytes;

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Resp,
    Text,
}

/// Flag bits a connection publishes (CLIENT LIST `flags=`).
pub const FLAG_MULTI: u8 = 1;
pub const FLAG_READONLY: u8 = 2;

/// The flag bits of a RESP connection.
pub fn flags(in_multi: bool, readonly: bool) -> u8 {
    (if in_multi { FLAG_MULTI } else { 0 }) | (if readonly { FLAG_READONLY } else { 0 })
}

/// CLIENT LIST's `resp=`.
pub fn resp_number(protocol: strata_protocol::resp::ProtocolVersion) -> u8 {
    if protocol == strata_protocol::resp::ProtocolVersion::Resp3 {
        3
    } else {
        2
    }
}

/// Every open client connection, by id.
#[derive(Default)]
pub struct Clients {
    by_id: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

impl Clients {
    /// Lists `client` until the returned guard drops.
    pub fn register(self: &Arc<Self>, client: Arc<ClientInfo>) -> Registered {
        let id = client.id;
        self.lock().insert(id, client);
        Registered {
            clients: Arc::clone(self),
            id,
        }
    }

    /// Every registered connection, in id order (oldest first, as Redis
    /// lists them). The lock is held only to clone the handles.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.lock().get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientInfo>>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection's place in the registry; dropping it (on any exit path,
/// a panic included) unregisters the connection.
pub struct Registered {
    clients: Arc<Clients>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.id);
    }
}

/// What CLIENT SETNAME, HELLO SETNAME and CLIENT SETINFO set.
#[derive(Clone, Default)]
pub struct Names {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
}

/// One connection as the CLIENT commands see it.
pub struct ClientInfo {
    pub id: u64,
    pub protocol: Protocol,
    /// The client's address, `ip:port` (`[v6]:port`).
    pub addr: String,
    /// The listener's address the client connected to.
    pub laddr: String,
    /// The socket's file descriptor (-1 when there is none).
    pub fd: i64,
    pub created: Instant,
    names: Mutex<Names>,
    /// Command being run or last run: `cmd::cmd_code` (0: none yet).
    cmd: AtomicU32,
    /// Wall-clock ms when the connection's last command started.
    active_ms: AtomicU64,
    qbuf_bytes: AtomicU64,
    qbuf_free_bytes: AtomicU64,
    /// Commands queued by MULTI; -1 outside MULTI.
    multi: AtomicI64,
    multi_mem_bytes: AtomicU64,
    /// The connection's share of the client buffers bound.
    tot_mem_bytes: AtomicU64,
    flags: AtomicU8,
    resp: AtomicU8,
    /// CLIENT NO-EVICT ON: never closed to make room in the client buffers.
    no_evict: Arc<AtomicBool>,
    /// CLIENT NO-TOUCH (accepted; Strata keeps no LRU data to touch).
    no_touch: AtomicBool,
    killed: AtomicBool,
    wake: AtomicWaker,
}

/// What a connection publishes once per batch of requests.
pub struct AtWait {
    pub active_ms: u64,
    pub qbuf_bytes: usize,
    pub qbuf_free_bytes: usize,
    pub multi: i64,
    pub multi_mem_bytes: usize,
    pub tot_mem_bytes: u64,
    pub flags: u8,
    pub resp: u8,
}

/// A copy of the published state, for one CLIENT LIST line.
pub struct Published {
    pub cmd: u32,
    pub active_ms: u64,
    pub qbuf_bytes: u64,
    pub qbuf_free_bytes: u64,
    pub multi: i64,
    pub multi_mem_bytes: u64,
    pub tot_mem_bytes: u64,
    pub flags: u8,
    pub resp: u8,
}

impl ClientInfo {
    pub fn new(id: u64, protocol: Protocol, addr: String, laddr: String, fd: i64) -> ClientInfo {
        ClientInfo {
            id,
            protocol,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            names: Mutex::new(Names::default()),
            cmd: AtomicU32::new(0),
            active_ms: AtomicU64::new(strata_storage::now_ms()),
            qbuf_bytes: AtomicU64::new(0),
            qbuf_free_bytes: AtomicU64::new(0),
            multi: AtomicI64::new(-1),
            multi_mem_bytes: AtomicU64::new(0),
            tot_mem_bytes: AtomicU64::new(0),
            flags: AtomicU8::new(0),
            resp: AtomicU8::new(match protocol {
                Protocol::Resp => 2,
                Protocol::Text => 0,
            }),
            no_evict: Arc::new(AtomicBool::new(false)),
            no_touch: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            wake: AtomicWaker::new(),
        }
    }

    /// A connection's info from its socket.
    pub fn for_stream(
        id: u64,
        protocol: Protocol,
        stream: &tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> ClientInfo {
        use std::os::fd::AsRawFd;
        let laddr = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        ClientInfo::new(
            id,
            protocol,
            peer.to_string(),
            laddr,
            i64::from(stream.as_raw_fd()),
        )
    }

    pub fn names(&self) -> Names {
        self.lock_names().clone()
    }

    pub fn update_names(&self, f: impl FnOnce(&mut Names)) {
        f(&mut self.lock_names());
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The command now running (one relaxed store per request).
    #[inline]
    pub fn set_cmd(&self, code: u32) {
        self.cmd.store(code, Relaxed);
    }

    /// Publishes the connection's state (once per batch of requests).
    pub fn at_wait(&self, w: &AtWait) {
        self.active_ms.store(w.active_ms, Relaxed);
        self.qbuf_bytes.store(w.qbuf_bytes as u64, Relaxed);
        self.qbuf_free_bytes
            .store(w.qbuf_free_bytes as u64, Relaxed);
        self.multi.store(w.multi, Relaxed);
        self.multi_mem_bytes
            .store(w.multi_mem_bytes as u64, Relaxed);
        self.tot_mem_bytes.store(w.tot_mem_bytes, Relaxed);
        self.flags.store(w.flags, Relaxed);
        self.resp.store(w.resp, Relaxed);
    }

    pub fn published(&self) -> Published {
        Published {
            cmd: self.cmd.load(Relaxed),
            active_ms: self.active_ms.load(Relaxed),
            qbuf_bytes: self.qbuf_bytes.load(Relaxed),
            qbuf_free_bytes: self.qbuf_free_bytes.load(Relaxed),
            multi: self.multi.load(Relaxed),
            multi_mem_bytes: self.multi_mem_bytes.load(Relaxed),
            tot_mem_bytes: self.tot_mem_bytes.load(Relaxed),
            flags: self.flags.load(Relaxed),
            resp: self.resp.load(Relaxed),
        }
    }

    /// The flag the client buffers consult before closing this connection
    /// to make room (shared with its `BufferCharge`).
    pub fn no_evict_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.no_evict)
    }

    pub fn set_no_evict(&self, on: bool) {
        self.no_evict.store(on, Relaxed);
    }

    pub fn no_evict(&self) -> bool {
        self.no_evict.load(Relaxed)
    }

    pub fn set_no_touch(&self, on: bool) {
        self.no_touch.store(on, Relaxed);
    }

    pub fn no_touch(&self) -> bool {
        self.no_touch.load(Relaxed)
    }

    /// CLIENT KILL: the connection closes at its next wait, or at once if
    /// it is waiting now.
    pub fn kill(&self) {
        self.killed.store(true, Release);
        self.wake.wake();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Acquire)
    }

    /// Completes once the connection is killed. Cancel-safe: the flag is
    /// the truth; only the connection's own task waits on it.
    pub fn killed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.is_killed() {
                return Poll::Ready(());
            }
            self.wake.register(cx.waker());
            // A kill between the check and the registration woke nobody.
            if self.is_killed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64) -> Arc<ClientInfo> {
        Arc::new(ClientInfo::new(
            id,
            Protocol::Resp,
            format!("127.0.0.1:{id}"),
            "127.0.0.1:7379".into(),
            -1,
        ))
    }

    #[test]
    fn registered_until_the_guard_drops() {
        let clients = Arc::new(Clients::default());
        let a = clients.register(info(1));
        let b = clients.register(info(2));
        let ids: Vec<u64> = clients.all().iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 2]);
        drop(a);
        assert!(clients.get(1).is_none());
        assert_eq!(clients.len(), 1);
        drop(b);
        assert!(clients.is_empty());
    }

    #[tokio::test]
    async fn a_kill_wakes_a_waiting_connection() {
        let client = info(7);
        let waiter = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.killed().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        client.kill();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        // Already killed: completes at once.
        client.killed().await;
    }
}
