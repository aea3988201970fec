//! The memory INFO reports: what the allocator holds, and the process's
//! resident set.
//!
//! The allocator is the binary's choice (`strata` links mimalloc), so the
//! binary hands in a probe at start-up ([`set_allocator_probe`]); without
//! one (the library used on its own), the resident set stands in for it.

use std::sync::OnceLock;

/// What the allocator says it holds.
#[derive(Clone, Copy, Debug)]
pub struct AllocatorMemory {
    /// Bytes it holds from the OS now: everything allocated, plus freed
    /// memory it has not returned yet.
    pub used_bytes: u64,
    /// The most it has held.
    pub peak_bytes: u64,
    /// Its name, for INFO `mem_allocator`.
    pub name: &'static str,
}

static PROBE: OnceLock<fn() -> AllocatorMemory> = OnceLock::new();

/// Sets the probe INFO asks (once; later calls are ignored).
pub fn set_allocator_probe(probe: fn() -> AllocatorMemory) {
    let _ = PROBE.set(probe);
}

/// One reading for INFO memory.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub used_bytes: u64,
    pub peak_bytes: u64,
    pub rss_bytes: u64,
    pub allocator: &'static str,
}

pub fn read() -> Memory {
    let (rss_bytes, rss_peak_bytes) = resident().unwrap_or((0, 0));
    match PROBE.get() {
        Some(probe) => {
            let a = probe();
            Memory {
                used_bytes: a.used_bytes,
                peak_bytes: a.peak_bytes.max(a.used_bytes),
                rss_bytes,
                allocator: a.name,
            }
        }
        None => Memory {
            used_bytes: rss_bytes,
            peak_bytes: rss_peak_bytes.max(rss_bytes),
            rss_bytes,
            allocator: "unknown",
        },
    }
}

/// The resident set and its peak (`VmRSS`, `VmHWM`), from
/// /proc/self/status; None where there is no such file.
fn resident() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((kib_field(&status, "VmRSS:")?, kib_field(&status, "VmHWM:")?))
}

fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `2.00M`, `3.25G`...
pub fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    match UNITS.iter().find(|(size, _)| n >= *size) {
        Some((size, unit)) if n < (1 << 60) => format!("{:.2}{unit}", n as f64 / *size as f64),
        _ => format!("{n}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_redis_writes_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(5 << 20), "5.00M");
        assert_eq!(human(3 << 30), "3.00G");
        assert_eq!(human(2 << 40), "2.00T");
    }

    #[test]
    fn the_status_file_gives_the_resident_set() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1 << 20));
        assert_eq!(kib_field(status, "VmHWM:"), Some(2 << 20));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        if cfg!(target_os = "linux") {
            let m = read();
            assert!(m.rss_bytes > 0 && m.used_bytes > 0, "{m:?}");
        }
    }
}
