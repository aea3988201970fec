//! State shared by every connection: the store, the configuration, and
//! counters. One type, passed around as `Arc<Shared>`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use strata_storage::Store;

use crate::config::ServerConfig;

/// How many SCAN cursors the server remembers. Cursors are numbers (as every
/// Redis client expects) that name a resume key held here; the oldest is
/// forgotten first, and a forgotten cursor gets `ERR invalid cursor`.
const SCAN_CURSORS_MAX: usize = 16_384;

pub struct Shared {
    pub store: Store,
    pub config: ServerConfig,
    pub started: Instant,
    pub stats: ServerStats,
    next_client_id: AtomicU64,
    scan_cursors: Mutex<ScanCursors>,
}

#[derive(Default)]
pub struct ServerStats {
    pub connections_received: AtomicU64,
    pub connections_current: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub commands_processed: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
}

struct ScanCursors {
    next_id: u64,
    resume_after: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Shared {
    pub fn new(store: Store, config: ServerConfig) -> Shared {
        // Start cursor ids at a time-derived value so cursors from before a
        // restart are unlikely to alias new ones.
        let seed = strata_storage::now_ms().wrapping_mul(1_000_003) % (1 << 40) + 1;
        Shared {
            store,
            config,
            started: Instant::now(),
            stats: ServerStats::default(),
            next_client_id: AtomicU64::new(1),
            scan_cursors: Mutex::new(ScanCursors {
                next_id: seed,
                resume_after: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers where a SCAN stopped and returns the cursor naming it.
    pub fn save_cursor(&self, resume_after: Bytes) -> u64 {
        let mut c = self.scan_cursors.lock().unwrap_or_else(|p| p.into_inner());
        let id = c.next_id;
        c.next_id = c.next_id.wrapping_add(1).max(1);
        if c.order.len() >= SCAN_CURSORS_MAX
            && let Some(old) = c.order.pop_front()
        {
            c.resume_after.remove(&old);
        }
        c.resume_after.insert(id, resume_after);
        c.order.push_back(id);
        id
    }

    pub fn load_cursor(&self, id: u64) -> Option<Bytes> {
        let c = self.scan_cursors.lock().unwrap_or_else(|p| p.into_inner());
        c.resume_after.get(&id).cloned()
    }
}

/// Per-connection state.
pub struct Session {
    pub id: u64,
    pub name: Option<Bytes>,
    pub protocol: strata_protocol::resp::ProtocolVersion,
    pub lib_name: Option<Bytes>,
    pub lib_version: Option<Bytes>,
    pub peer: String,
    pub created: Instant,
}

impl Session {
    pub fn new(id: u64, peer: String) -> Session {
        Session {
            id,
            name: None,
            protocol: strata_protocol::resp::ProtocolVersion::Resp2,
            lib_name: None,
            lib_version: None,
            peer,
            created: Instant::now(),
        }
    }
}
