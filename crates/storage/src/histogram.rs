//! Fixed-bucket histograms the writer keeps for monitoring (the group
//! commit's size, fsync latency): one relaxed atomic add per observation,
//! on paths that already do far more (a group commit, an fsync), never per
//! command. The server turns them into Prometheus histograms.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (inclusive) of the group-size buckets, in mutations; the
/// last bucket takes everything above.
pub const GROUP_SIZE_BOUNDS: [u64; 14] = [
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    2048,
    4096,
    u64::MAX,
];

/// Upper bounds (inclusive) of the fsync-latency buckets, in microseconds:
/// from a fast NVMe flush (tens of µs) to a disk in trouble (seconds).
pub const FSYNC_MICROS_BOUNDS: [u64; 16] = [
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    u64::MAX,
];

/// Counts per bucket; `bounds` ends with `u64::MAX` (the overflow bucket).
/// The default has no buckets and counts nothing (a placeholder until
/// [`Buckets::new`] gives it its bounds).
#[derive(Default)]
pub(crate) struct Buckets {
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
}

impl Buckets {
    pub(crate) fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.is_sorted() && bounds.last() == Some(&u64::MAX));
        Buckets {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts `value` in the first bucket whose bound is at least it.
    pub(crate) fn record(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        // The last bound is u64::MAX, so `i` is always a bucket.
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn read(&self) -> BucketCounts {
        BucketCounts {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A histogram as read at one moment: per bucket (not cumulative), with
/// each bucket's inclusive upper bound; the last bound is `u64::MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketCounts {
    pub bounds: &'static [u64],
    pub counts: Vec<u64>,
}

impl BucketCounts {
    /// Observations in every bucket together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let b = Buckets::new(&GROUP_SIZE_BOUNDS);
        for v in [0, 1, 2, 3, 4096, 4097, u64::MAX] {
            b.record(v);
        }
        let read = b.read();
        assert_eq!(read.counts[0], 2, "0 and 1");
        assert_eq!(read.counts[1], 1, "2");
        assert_eq!(read.counts[2], 1, "3 in (2, 4]");
        assert_eq!(read.counts[12], 1, "4096");
        assert_eq!(read.counts[13], 2, "above 4096");
        assert_eq!(read.total(), 7);
        assert_eq!(read.bounds.len(), read.counts.len());
    }
}
