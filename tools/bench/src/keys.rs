//! Key names and key choosers: uniform, YCSB's scrambled zipfian,
//! sequential, and YCSB's "latest" (for ycsb-d).

use rand::Rng;

/// Keys are `key:` plus a 12-digit zero-padded index: fixed width, so byte
/// order equals numeric order and a RANGE scan from one key returns the
/// next keys by index.
pub const KEY_LEN_BYTES: usize = KEY_PREFIX.len() + KEY_DIGITS;
const KEY_PREFIX: &[u8; 4] = b"key:";
const KEY_DIGITS: usize = 12;
/// Indices wrap at 10^12 so every key has exactly [`KEY_DIGITS`] digits.
pub const KEY_INDEX_LIMIT: u64 = 10u64.pow(KEY_DIGITS as u32);

/// The key for `index`, `key:000000000042` style, without allocating.
pub fn key_bytes(index: u64) -> [u8; KEY_LEN_BYTES] {
    let mut out = [b'0'; KEY_LEN_BYTES];
    out[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
    let mut n = index % KEY_INDEX_LIMIT;
    for slot in out[KEY_PREFIX.len()..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// The largest possible key: the end of an open-ended RANGE scan.
pub fn key_max() -> [u8; KEY_LEN_BYTES] {
    key_bytes(KEY_INDEX_LIMIT - 1)
}

/// YCSB's ZipfianGenerator (Gray et al., "Quickly Generating Billion-Record
/// Synthetic Databases", SIGMOD 1994): rank 0 is the most popular item.
///
/// We implement it rather than use `rand_distr::Zipf` so that `theta` means
/// exactly what it means in YCSB (default 0.99) and results are comparable
/// with YCSB runs. The constants are computed once and shared (the struct is
/// `Copy`), because zeta(n) is a sum over all n items.
#[derive(Debug, Clone, Copy)]
pub struct Zipfian {
    items: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// 1 + 0.5^theta: the threshold below which rank 1 is returned.
    half_pow_theta_plus_one: f64,
}

/// Above this many items, zeta(n) is completed with the Euler–Maclaurin
/// formula instead of summing every term: a keyspace of 10^9 would
/// otherwise take seconds to start. The error is far below f64 noise for
/// the rank thresholds we use.
const ZETA_EXACT_TERMS: u64 = 1 << 20;

/// zeta(n, theta) = sum_{i=1..n} 1 / i^theta.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS);
    let mut sum = 0.0;
    for i in 1..=exact {
        sum += 1.0 / (i as f64).powf(theta);
    }
    if n > exact {
        // sum_{i=m+1..n} f(i) ≈ ∫_m^n f + (f(n) - f(m))/2 + (f'(n) - f'(m))/12
        // with f(x) = x^-theta.
        let m = exact as f64;
        let nf = n as f64;
        let f = |x: f64| x.powf(-theta);
        let df = |x: f64| -theta * x.powf(-theta - 1.0);
        let integral = (nf.powf(1.0 - theta) - m.powf(1.0 - theta)) / (1.0 - theta);
        sum += integral + (f(nf) - f(m)) / 2.0 + (df(nf) - df(m)) / 12.0;
    }
    sum
}

impl Zipfian {
    /// A generator over ranks `0..items`; `theta` must be in (0, 1).
    pub fn new(items: u64, theta: f64) -> Zipfian {
        let items = items.max(1);
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian {
            items,
            alpha,
            zetan,
            eta,
            half_pow_theta_plus_one: 1.0 + 0.5f64.powf(theta),
        }
    }

    /// Number of items (ranks) this generator draws from.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// A rank in `0..items`, 0 the most likely.
    pub fn next_rank<R: Rng>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.half_pow_theta_plus_one {
            return 1.min(self.items - 1);
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }
}

/// YCSB's FNV-1a 64 over the 8 bytes of a value, low byte first; used to
/// scatter zipfian ranks over the keyspace (ScrambledZipfianGenerator), so
/// the hot keys are not all neighbours.
pub fn fnv1a64(value: u64) -> u64 {
    const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash = OFFSET_BASIS;
    let mut v = value;
    for _ in 0..8 {
        hash ^= v & 0xff;
        hash = hash.wrapping_mul(PRIME);
        v >>= 8;
    }
    hash
}

/// How the key of a read, update, scan or RMW is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    /// Every key of the keyspace equally likely.
    Uniform,
    /// YCSB scrambled zipfian: a few hot keys, scattered over the keyspace.
    Zipfian,
    /// Each connection walks its own stripe of the keyspace in order, wrapping.
    Sequential,
}

/// One connection's key chooser.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    Uniform { keyspace: u64 },
    Zipfian { zipf: Zipfian },
    Sequential { keyspace: u64, next: u64 },
}

impl KeyChooser {
    /// `connection`/`connections` place a sequential walker at the start of
    /// its own stripe, so concurrent connections do not hit the same keys in
    /// lock step. `zipf` must be built over `keyspace` items.
    pub fn new(
        distribution: Distribution,
        keyspace: u64,
        zipf: Option<Zipfian>,
        connection: u64,
        connections: u64,
    ) -> KeyChooser {
        let keyspace = keyspace.max(1);
        match (distribution, zipf) {
            (Distribution::Uniform, _) | (Distribution::Zipfian, None) => {
                KeyChooser::Uniform { keyspace }
            }
            (Distribution::Zipfian, Some(zipf)) => KeyChooser::Zipfian { zipf },
            (Distribution::Sequential, _) => KeyChooser::Sequential {
                keyspace,
                next: stripe_start(keyspace, connection, connections),
            },
        }
    }

    /// The next key index, in `0..keyspace`.
    pub fn next_index<R: Rng>(&mut self, rng: &mut R) -> u64 {
        match self {
            KeyChooser::Uniform { keyspace } => rng.random_range(0..*keyspace),
            KeyChooser::Zipfian { zipf } => fnv1a64(zipf.next_rank(rng)) % zipf.items(),
            KeyChooser::Sequential { keyspace, next } => {
                let index = *next;
                *next = (*next + 1) % *keyspace;
                index
            }
        }
    }
}

/// First index of connection `connection`'s stripe of `keyspace`.
pub fn stripe_start(keyspace: u64, connection: u64, connections: u64) -> u64 {
    let connections = connections.max(1);
    // u128: keyspace * connection can overflow u64 for huge keyspaces.
    ((keyspace as u128 * connection as u128) / connections as u128) as u64
}

/// YCSB's SkewedLatestGenerator: the most recently inserted key is the most
/// likely. `latest` is the highest index inserted so far; the result is
/// `latest - rank` with a (not scrambled) zipfian rank.
pub fn latest_index<R: Rng>(zipf: &Zipfian, latest: u64, rng: &mut R) -> u64 {
    latest.saturating_sub(zipf.next_rank(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn keys_are_fixed_width_and_ordered() {
        assert_eq!(&key_bytes(0), b"key:000000000000");
        assert_eq!(&key_bytes(42), b"key:000000000042");
        assert_eq!(&key_bytes(KEY_INDEX_LIMIT - 1), b"key:999999999999");
        assert_eq!(key_bytes(KEY_INDEX_LIMIT), key_bytes(0));
        assert!(key_bytes(9) < key_bytes(10));
        assert!(key_bytes(99_999) < key_bytes(100_000));
        assert!(key_bytes(123) <= key_max());
    }

    #[test]
    fn sequential_walks_its_stripe_in_order_and_wraps() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut first = KeyChooser::new(Distribution::Sequential, 10, None, 0, 2);
        let got: Vec<u64> = (0..12).map(|_| first.next_index(&mut rng)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        let mut second = KeyChooser::new(Distribution::Sequential, 10, None, 1, 2);
        let got: Vec<u64> = (0..6).map(|_| second.next_index(&mut rng)).collect();
        assert_eq!(got, vec![5, 6, 7, 8, 9, 0]);
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut chooser = KeyChooser::new(Distribution::Uniform, 100, None, 0, 1);
        let mut seen = [0u32; 100];
        for _ in 0..10_000 {
            let i = chooser.next_index(&mut rng);
            assert!(i < 100);
            seen[i as usize] += 1;
        }
        // Expect 100 each; every key must appear, none wildly over-drawn.
        assert!(seen.iter().all(|&c| (50..=160).contains(&c)), "{seen:?}");
    }

    #[test]
    fn zipfian_is_skewed_and_in_range() {
        let keyspace = 10_000;
        let zipf = Zipfian::new(keyspace, 0.99);
        let mut rng = SmallRng::seed_from_u64(42);
        let mut chooser = KeyChooser::new(Distribution::Zipfian, keyspace, Some(zipf), 0, 1);
        let mut counts = vec![0u32; keyspace as usize];
        let draws = 10_000;
        for _ in 0..draws {
            let i = chooser.next_index(&mut rng);
            assert!(i < keyspace);
            counts[i as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_1pct: u32 = counts[..(keyspace as usize / 100)].iter().sum();
        // Uniform would give the top 1% about 1% (plus noise); YCSB zipfian
        // with theta 0.99 over 10k items gives them about half the draws.
        assert!(
            top_1pct as f64 / draws as f64 > 0.35,
            "top 1% got {top_1pct} of {draws}"
        );
        // The hottest key is scrambled away from index 0's neighbourhood:
        // ranks 0 and 1 must not map to adjacent keys.
        assert_ne!(fnv1a64(0) % keyspace + 1, fnv1a64(1) % keyspace);
    }

    #[test]
    fn zipfian_ranks_follow_the_law() {
        // P(rank 0) = 1/zeta(n): with n = 1000, theta = 0.99 that is ~0.133.
        let zipf = Zipfian::new(1000, 0.99);
        let mut rng = SmallRng::seed_from_u64(3);
        let draws = 10_000;
        let zeros = (0..draws).filter(|_| zipf.next_rank(&mut rng) == 0).count();
        let expected = 1.0 / zeta(1000, 0.99);
        let got = zeros as f64 / draws as f64;
        assert!(
            (got - expected).abs() < 0.02,
            "got {got}, expected {expected}"
        );
    }

    #[test]
    fn zeta_approximation_matches_exact_sum() {
        let n = ZETA_EXACT_TERMS * 3;
        let mut exact = 0.0;
        for i in 1..=n {
            exact += 1.0 / (i as f64).powf(0.99);
        }
        let approx = zeta(n, 0.99);
        assert!(
            ((approx - exact) / exact).abs() < 1e-9,
            "{approx} vs {exact}"
        );
    }

    #[test]
    fn latest_prefers_recent_keys() {
        let zipf = Zipfian::new(1000, 0.99);
        let mut rng = SmallRng::seed_from_u64(5);
        let latest = 5_000;
        let mut recent = 0;
        for _ in 0..10_000 {
            let i = latest_index(&zipf, latest, &mut rng);
            assert!(i <= latest && i > latest - 1000);
            if latest - i < 10 {
                recent += 1;
            }
        }
        // The 10 newest keys out of 1000 get far more than 1% of reads.
        assert!(recent > 3_000, "{recent}");
    }

    #[test]
    fn stripes_partition_the_keyspace() {
        assert_eq!(stripe_start(100, 0, 3), 0);
        assert_eq!(stripe_start(100, 1, 3), 33);
        assert_eq!(stripe_start(100, 3, 3), 100);
        assert_eq!(stripe_start(u64::MAX, 2, 2), u64::MAX);
    }
}
