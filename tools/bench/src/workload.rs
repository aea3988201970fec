//! Workloads and their operation mixes.

use rand::Rng;

/// What the benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// SET of one key.
    Set,
    /// GET of one key.
    Get,
    /// MSET of `--batch` keys.
    Mset,
    /// YCSB A: 50% read, 50% update.
    #[value(name = "ycsb-a")]
    YcsbA,
    /// YCSB B: 95% read, 5% update.
    #[value(name = "ycsb-b")]
    YcsbB,
    /// YCSB C: 100% read.
    #[value(name = "ycsb-c")]
    YcsbC,
    /// YCSB D: 95% read of recently inserted keys, 5% insert.
    #[value(name = "ycsb-d")]
    YcsbD,
    /// YCSB E: 95% short RANGE scan, 5% insert (Strata's RANGE command).
    #[value(name = "ycsb-e")]
    YcsbE,
    /// YCSB F: 50% read, 50% read-modify-write (GET, then SET of the key).
    #[value(name = "ycsb-f")]
    YcsbF,
    /// Replay `--commands-file` (RESP commands), all connections walking
    /// it in order from one shared cursor (RESP only).
    Commands,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Mset => "mset",
            Workload::YcsbA => "ycsb-a",
            Workload::YcsbB => "ycsb-b",
            Workload::YcsbC => "ycsb-c",
            Workload::YcsbD => "ycsb-d",
            Workload::YcsbE => "ycsb-e",
            Workload::YcsbF => "ycsb-f",
            Workload::Commands => "commands",
        }
    }

    /// The mix: (operation, weight in percent); the weights sum to 100.
    pub fn mix(self) -> &'static [(OpKind, u32)] {
        match self {
            Workload::Set => &[(OpKind::Set, 100)],
            Workload::Get => &[(OpKind::Get, 100)],
            Workload::Mset => &[(OpKind::Mset, 100)],
            Workload::YcsbA => &[(OpKind::Read, 50), (OpKind::Update, 50)],
            Workload::YcsbB => &[(OpKind::Read, 95), (OpKind::Update, 5)],
            Workload::YcsbC => &[(OpKind::Read, 100)],
            Workload::YcsbD => &[(OpKind::Read, 95), (OpKind::Insert, 5)],
            Workload::YcsbE => &[(OpKind::Scan, 95), (OpKind::Insert, 5)],
            Workload::YcsbF => &[(OpKind::Read, 50), (OpKind::Rmw, 50)],
            Workload::Commands => &[(OpKind::Command, 100)],
        }
    }

    /// Whether the report breaks results down by operation type.
    pub fn is_mixed(self) -> bool {
        self.mix().len() > 1
    }

    /// Draws the next operation.
    pub fn draw<R: Rng>(self, rng: &mut R) -> OpKind {
        let mix = self.mix();
        if let [(only, _)] = mix {
            return *only;
        }
        let mut ticket = rng.random_range(0..100u32);
        for &(op, weight) in mix {
            if ticket < weight {
                return op;
            }
            ticket -= weight;
        }
        // Unreachable while the weights sum to 100; the last entry is a
        // safe answer anyway.
        mix.last().map_or(OpKind::Read, |&(op, _)| op)
    }
}

/// One kind of operation, as counted in the per-operation breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Set,
    Get,
    Mset,
    Read,
    Update,
    Insert,
    Scan,
    /// GET then SET of the same key; latency covers both round trips.
    Rmw,
    /// One command of `--commands-file`.
    Command,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 9] = [
        OpKind::Set,
        OpKind::Get,
        OpKind::Mset,
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::Rmw,
        OpKind::Command,
    ];

    /// Index into per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Mset => "mset",
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::Rmw => "rmw",
            OpKind::Command => "command",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn shares(workload: Workload, draws: u32) -> Vec<(OpKind, f64)> {
        let mut rng = SmallRng::seed_from_u64(2024);
        let mut counts = [0u32; OpKind::ALL.len()];
        for _ in 0..draws {
            counts[workload.draw(&mut rng).index()] += 1;
        }
        OpKind::ALL
            .iter()
            .filter(|k| counts[k.index()] > 0)
            .map(|&k| (k, counts[k.index()] as f64 / draws as f64))
            .collect()
    }

    #[test]
    fn mixes_sum_to_100() {
        for w in [
            Workload::Set,
            Workload::Get,
            Workload::Mset,
            Workload::YcsbA,
            Workload::YcsbB,
            Workload::YcsbC,
            Workload::YcsbD,
            Workload::YcsbE,
            Workload::YcsbF,
            Workload::Commands,
        ] {
            let total: u32 = w.mix().iter().map(|&(_, p)| p).sum();
            assert_eq!(total, 100, "{}", w.name());
        }
    }

    #[test]
    fn drawn_ratios_match_the_mix() {
        // 10k draws: the standard deviation of a 50% share is 0.5%, of a 5%
        // share 0.22%; 2 percentage points is a safe tolerance.
        for w in [
            Workload::YcsbA,
            Workload::YcsbB,
            Workload::YcsbC,
            Workload::YcsbD,
            Workload::YcsbE,
            Workload::YcsbF,
            Workload::Set,
        ] {
            let got = shares(w, 10_000);
            assert_eq!(got.len(), w.mix().len(), "{}: {got:?}", w.name());
            for &(op, percent) in w.mix() {
                let share = got.iter().find(|(k, _)| *k == op).map_or(0.0, |&(_, s)| s);
                let want = percent as f64 / 100.0;
                assert!(
                    (share - want).abs() < 0.02,
                    "{} {}: {share} vs {want}",
                    w.name(),
                    op.name()
                );
            }
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = SmallRng::seed_from_u64(9);
        let mut b = SmallRng::seed_from_u64(9);
        for _ in 0..1000 {
            assert_eq!(Workload::YcsbB.draw(&mut a), Workload::YcsbB.draw(&mut b));
        }
    }
}
