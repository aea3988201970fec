//! A global bound on the bytes client connections hold in their buffers
//! (partial requests being read, replies not yet sent), as Redis's
//! `maxmemory-clients`: without it, 4,096 connections may each hold a
//! request of the maximum size, 256 GiB at the defaults.
//!
//! Cheap accounting: a connection is charged in steps of
//! [`CHARGE_STEP_BYTES`], and only touches the shared counter when its
//! buffers cross a step: never for the small requests and pipelines of
//! ordinary traffic, which fit in the first step, charged once at connect.
//! Connections charged more than that are "large" and listed in a registry
//! (a mutex taken only when a connection becomes large or small again, and
//! when the bound is exceeded).
//!
//! When a charge would exceed the bound, the largest clients are closed
//! until it fits again; if the connection asking for more is itself the
//! largest (or nothing larger than one step is left), its request is
//! refused instead. Small requests keep being served: a connection within
//! its first step never asks for anything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The unit of a connection's charge, and what every connection is charged
/// at connect: its two initial 16 KiB buffers.
pub const CHARGE_STEP_BYTES: u64 = 32 * 1024;

/// The shared side: the bound, the total charged, the large clients.
pub struct ClientBuffers {
    size_bytes_max: u64,
    used_bytes: AtomicU64,
    /// Clients closed (or refused a request) because the bound was reached.
    evicted: AtomicU64,
    large: Mutex<HashMap<u64, Arc<LargeClient>>>,
}

/// A connection charged more than one step: what an eviction needs to
/// choose it and tell it.
struct LargeClient {
    peer: SocketAddr,
    charged_bytes: AtomicU64,
    /// Set by the evictor; the connection closes when it sees it.
    evicting: AtomicBool,
    /// Wakes the connection if it is waiting (for bytes, or for its client
    /// to read replies) when it is chosen.
    wake: Notify,
    /// CLIENT NO-EVICT ON: never chosen.
    no_evict: Arc<AtomicBool>,
}

/// A request the bound has no room for: answered with this, then the
/// connection is closed (its partial request cannot be skipped).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "client buffers are full ({used_bytes} bytes held by all clients; the limit is {size_bytes_max}, see client-buffers-size-bytes-max); this client held {held_bytes}"
)]
pub struct BuffersFull {
    pub used_bytes: u64,
    pub size_bytes_max: u64,
    pub held_bytes: u64,
}

impl ClientBuffers {
    pub fn new(size_bytes_max: u64) -> ClientBuffers {
        ClientBuffers {
            size_bytes_max,
            used_bytes: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            large: Mutex::new(HashMap::new()),
        }
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Relaxed)
    }

    pub fn size_bytes_max(&self) -> u64 {
        self.size_bytes_max
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Brings the total back within the bound by choosing the largest
    /// clients to close, `me` excluded: `Err` if `me` (charged `mine`) is
    /// the largest, or nothing large enough is left to close.
    fn make_room(&self, me: u64, mine: u64) -> Result<(), BuffersFull> {
        let large = self.large.lock().unwrap_or_else(|p| p.into_inner());
        let used = self.used_bytes.load(Relaxed);
        // Clients already told to close free their charge soon.
        let freeing: u64 = large
            .values()
            .filter(|c| c.evicting.load(Relaxed))
            .map(|c| c.charged_bytes.load(Relaxed))
            .sum();
        let mut excess = used
            .saturating_sub(freeing)
            .saturating_sub(self.size_bytes_max);
        while excess > 0 {
            let victim = large
                .iter()
                .filter(|(id, c)| {
                    **id != me && !c.evicting.load(Relaxed) && !c.no_evict.load(Relaxed)
                })
                .map(|(id, c)| (c.charged_bytes.load(Relaxed), *id, c))
                .max_by_key(|(charged, id, _)| (*charged, std::cmp::Reverse(*id)));
            let Some((charged, _, client)) = victim.filter(|(charged, ..)| *charged > mine) else {
                self.evicted.fetch_add(1, Relaxed);
                return Err(BuffersFull {
                    used_bytes: used,
                    size_bytes_max: self.size_bytes_max,
                    held_bytes: mine,
                });
            };
            tracing::warn!(
                client = %client.peer,
                buffers_bytes = charged,
                used_bytes = used,
                size_bytes_max = self.size_bytes_max,
                "client buffers are full: closing the client holding the most"
            );
            client.evicting.store(true, Relaxed);
            client.wake.notify_one();
            self.evicted.fetch_add(1, Relaxed);
            excess = excess.saturating_sub(charged);
        }
        Ok(())
    }
}

/// One connection's charge; released when dropped.
pub(crate) struct BufferCharge {
    buffers: Arc<ClientBuffers>,
    id: u64,
    peer: SocketAddr,
    charged_bytes: u64,
    /// Allocated the first time the connection becomes large, then kept.
    slot: Option<Arc<LargeClient>>,
    /// Listed in the registry (charged more than one step).
    listed: bool,
    /// Set by CLIENT NO-EVICT (shared with the connection's `ClientInfo`).
    no_evict: Arc<AtomicBool>,
}

/// What `held` bytes are charged: whole steps, at least one.
fn charge_for(held_bytes: u64) -> u64 {
    held_bytes
        .div_ceil(CHARGE_STEP_BYTES)
        .max(1)
        .saturating_mul(CHARGE_STEP_BYTES)
}

impl BufferCharge {
    pub(crate) fn new(buffers: Arc<ClientBuffers>, id: u64, peer: SocketAddr) -> BufferCharge {
        buffers.used_bytes.fetch_add(CHARGE_STEP_BYTES, Relaxed);
        BufferCharge {
            buffers,
            id,
            peer,
            charged_bytes: CHARGE_STEP_BYTES,
            slot: None,
            listed: false,
            no_evict: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Makes CLIENT NO-EVICT's flag the one eviction consults.
    pub(crate) fn with_no_evict(mut self, flag: Arc<AtomicBool>) -> BufferCharge {
        self.no_evict = flag;
        self
    }

    /// Whether `held` bytes are within the charge: the one check on the
    /// fast path, a comparison.
    #[inline]
    pub(crate) fn covers(&self, held_bytes: usize) -> bool {
        held_bytes as u64 <= self.charged_bytes
    }

    /// What the connection is charged now (CLIENT LIST's `tot-mem`).
    #[inline]
    pub(crate) fn charged_bytes(&self) -> u64 {
        self.charged_bytes
    }

    /// Charged more than the first step (so listed and evictable).
    #[inline]
    pub(crate) fn is_large(&self) -> bool {
        self.charged_bytes > CHARGE_STEP_BYTES
    }

    /// Charges the connection for `held` bytes (more than it covers). On
    /// `Err` the connection must refuse its request and close.
    #[cold]
    pub(crate) fn grow(&mut self, held_bytes: usize) -> Result<(), BuffersFull> {
        let want = charge_for(held_bytes as u64);
        let Some(delta) = want.checked_sub(self.charged_bytes).filter(|d| *d > 0) else {
            return Ok(());
        };
        let used = self.buffers.used_bytes.fetch_add(delta, Relaxed) + delta;
        self.charged_bytes = want;
        self.publish();
        if used > self.buffers.size_bytes_max {
            self.buffers.make_room(self.id, want).inspect_err(|full| {
                tracing::warn!(
                    client = %self.peer,
                    buffers_bytes = full.held_bytes,
                    used_bytes = full.used_bytes,
                    size_bytes_max = full.size_bytes_max,
                    "client buffers are full: refusing this client's request and closing it"
                );
            })?;
        }
        Ok(())
    }

    /// What an evicted connection tells its client before it closes.
    pub(crate) fn evicted_message(&self) -> String {
        format!(
            "client buffers are full (the limit is {} bytes, see client-buffers-size-bytes-max): this client held the most ({} bytes) and is closed",
            self.buffers.size_bytes_max, self.charged_bytes
        )
    }

    /// Lowers the charge to what `held` bytes need. Returns true if the
    /// connection went from large to small: its buffers grew and should be
    /// replaced by small ones (a grown buffer keeps its allocation
    /// otherwise).
    pub(crate) fn shrink(&mut self, held_bytes: usize) -> bool {
        let want = charge_for(held_bytes as u64);
        if want >= self.charged_bytes {
            return false;
        }
        let was_large = self.is_large();
        self.buffers
            .used_bytes
            .fetch_sub(self.charged_bytes - want, Relaxed);
        self.charged_bytes = want;
        self.publish();
        was_large && !self.is_large()
    }

    /// Chosen for eviction (checked before each wait while large).
    pub(crate) fn is_evicted(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|s| self.listed && s.evicting.load(Relaxed))
    }

    /// Completes when the connection is chosen for eviction; never while
    /// it is small. Cancel-safe: the flag is the truth, the wake-up only
    /// a hint.
    pub(crate) async fn evicted(&self) {
        let Some(slot) = self.slot.as_ref().filter(|_| self.listed) else {
            return std::future::pending().await;
        };
        loop {
            let woken = slot.wake.notified();
            if slot.evicting.load(Relaxed) {
                return;
            }
            woken.await;
        }
    }

    /// Keeps the registry in step with the charge: large connections are
    /// listed (with their charge), small ones are not.
    fn publish(&mut self) {
        let large = self.is_large();
        if large {
            let slot = self.slot.get_or_insert_with(|| {
                Arc::new(LargeClient {
                    peer: self.peer,
                    charged_bytes: AtomicU64::new(0),
                    evicting: AtomicBool::new(false),
                    wake: Notify::new(),
                    no_evict: Arc::clone(&self.no_evict),
                })
            });
            slot.charged_bytes.store(self.charged_bytes, Relaxed);
        }
        if large == self.listed {
            return;
        }
        let mut registry = self.buffers.large.lock().unwrap_or_else(|p| p.into_inner());
        match (&self.slot, large) {
            (Some(slot), true) => {
                registry.insert(self.id, Arc::clone(slot));
            }
            _ => {
                registry.remove(&self.id);
                // Small again: its memory is free, which is what an
                // eviction wanted; a stale flag must not close it later.
                if let Some(slot) = &self.slot {
                    slot.evicting.store(false, Relaxed);
                }
            }
        }
        self.listed = large;
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        self.buffers
            .used_bytes
            .fetch_sub(self.charged_bytes, Relaxed);
        if self.listed {
            let mut registry = self.buffers.large.lock().unwrap_or_else(|p| p.into_inner());
            registry.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn small_connections_cost_one_step_and_never_list() {
        let buffers = Arc::new(ClientBuffers::new(MIB as u64));
        let mut a = BufferCharge::new(Arc::clone(&buffers), 1, addr(1));
        assert_eq!(buffers.used_bytes(), CHARGE_STEP_BYTES);
        assert!(a.covers(16 * 1024) && a.covers(CHARGE_STEP_BYTES as usize));
        assert!(!a.covers(CHARGE_STEP_BYTES as usize + 1));
        a.grow(100 * 1024).unwrap();
        assert_eq!(buffers.used_bytes(), 4 * CHARGE_STEP_BYTES);
        assert!(a.is_large());
        assert_eq!(buffers.large.lock().unwrap().len(), 1);
        a.grow(200 * 1024).unwrap();
        assert!(!a.shrink(100 * 1024), "still large: its buffers stay");
        assert_eq!(buffers.used_bytes(), 4 * CHARGE_STEP_BYTES);
        assert!(a.shrink(10), "small again: its buffers are replaced");
        assert_eq!(buffers.used_bytes(), CHARGE_STEP_BYTES);
        assert!(buffers.large.lock().unwrap().is_empty());
        drop(a);
        assert_eq!(buffers.used_bytes(), 0);
    }

    #[tokio::test]
    async fn past_the_bound_the_largest_other_client_is_evicted() {
        let buffers = Arc::new(ClientBuffers::new(4 * MIB as u64));
        let mut big = BufferCharge::new(Arc::clone(&buffers), 1, addr(1));
        let mut mid = BufferCharge::new(Arc::clone(&buffers), 2, addr(2));
        let mut small = BufferCharge::new(Arc::clone(&buffers), 3, addr(3));
        big.grow(3 * MIB).unwrap();
        mid.grow(MIB / 2).unwrap();
        // Over the bound: the largest (not the asker) is chosen.
        small.grow(MIB).unwrap();
        assert!(big.is_evicted() && !mid.is_evicted() && !small.is_evicted());
        tokio::time::timeout(std::time::Duration::from_secs(5), big.evicted())
            .await
            .expect("the evicted connection is woken");
        assert_eq!(buffers.evicted(), 1);
        // Until `big` is gone its charge counts as freeing: no second victim.
        mid.grow(MIB).unwrap();
        assert!(!mid.is_evicted() && !small.is_evicted());
        drop(big);
        assert_eq!(buffers.used_bytes(), charge_for(MIB as u64) * 2);
    }

    #[test]
    fn a_no_evict_client_is_never_chosen() {
        let buffers = Arc::new(ClientBuffers::new(4 * MIB as u64));
        let flag = Arc::new(AtomicBool::new(true));
        let mut big = BufferCharge::new(Arc::clone(&buffers), 1, addr(1)).with_no_evict(flag);
        let mut mid = BufferCharge::new(Arc::clone(&buffers), 2, addr(2));
        let mut asker = BufferCharge::new(Arc::clone(&buffers), 3, addr(3));
        big.grow(2 * MIB).unwrap();
        mid.grow(3 * MIB / 2).unwrap();
        asker.grow(MIB).unwrap();
        assert!(!big.is_evicted(), "protected by CLIENT NO-EVICT ON");
        assert!(mid.is_evicted(), "the largest unprotected client is chosen");
    }

    #[test]
    fn the_largest_asker_is_refused_itself() {
        let buffers = Arc::new(ClientBuffers::new(2 * MIB as u64));
        let mut other = BufferCharge::new(Arc::clone(&buffers), 1, addr(1));
        let mut asker = BufferCharge::new(Arc::clone(&buffers), 2, addr(2));
        other.grow(MIB / 2).unwrap();
        let refused = asker.grow(2 * MIB).unwrap_err();
        assert_eq!(refused.held_bytes, charge_for(2 * MIB as u64));
        assert!(refused.to_string().contains("client buffers are full"));
        assert!(!other.is_evicted(), "a smaller client is not closed for it");
        assert_eq!(buffers.evicted(), 1);
        drop(asker);
        drop(other);
        assert_eq!(buffers.used_bytes(), 0);
        assert!(buffers.large.lock().unwrap().is_empty());
    }

    #[test]
    fn shrinking_clears_a_stale_eviction() {
        let buffers = Arc::new(ClientBuffers::new(MIB as u64));
        let mut a = BufferCharge::new(Arc::clone(&buffers), 1, addr(1));
        let mut b = BufferCharge::new(Arc::clone(&buffers), 2, addr(2));
        a.grow(768 * 1024).unwrap();
        b.grow(320 * 1024).unwrap();
        assert!(a.is_evicted() && !b.is_evicted());
        // `a` finished its request before it noticed: it stays.
        a.shrink(0);
        a.grow(64 * 1024).unwrap();
        assert!(!a.is_evicted());
    }
}
