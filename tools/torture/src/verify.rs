//! What the store must contain, and the checks after each restart.
//!
//! After every restart each key the tool ever wrote is checked once (this
//! cycle's keys) and then remembered exactly as observed, so the model knows
//! the exact content of the store at all times: later checks (a random
//! sample per cycle, everything at the end) expect exactly that, and DBSIZE
//! must equal its size.

use std::collections::HashSet;

use rand::Rng;
use rand::rngs::StdRng;

use crate::report::{Violation, ViolationKind};
use crate::resp::{CallError, Conn, Reply};
use crate::workload::{
    DelTarget, WriteId, WriterLog, batch_key, counter_key, single_key, value_for,
};

/// Keys per MGET: bounds the reply size (values up to `--value-bytes-max`).
const MGET_KEYS_MAX: usize = 256;
/// COUNT for the final SCAN.
const SCAN_COUNT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct SingleRec {
    pub id: WriteId,
    pub present: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchRec {
    pub id: WriteId,
    pub len: u8,
    /// Bit j set: key j present. All or none, unless a violation was found.
    pub present: u8,
}

impl BatchRec {
    fn full(&self) -> u8 {
        full_mask(self.len)
    }
}

fn full_mask(len: u8) -> u8 {
    ((1u16 << len.min(8)) - 1) as u8
}

/// The exact content of the store as far as the tool knows it.
#[derive(Debug, Default)]
pub struct Model {
    pub singles: Vec<SingleRec>,
    pub batches: Vec<BatchRec>,
    /// Per writer: the counter's last observed value (0 = absent).
    pub counters: Vec<u64>,
}

impl Model {
    pub fn new(writers: usize) -> Model {
        Model {
            counters: vec![0; writers],
            ..Model::default()
        }
    }

    /// Keys that must be in the store: what DBSIZE must say.
    pub fn expected_keys(&self) -> u64 {
        let singles = self.singles.iter().filter(|s| s.present).count() as u64;
        let batches: u64 = self
            .batches
            .iter()
            .map(|b| u64::from(b.present.count_ones()))
            .sum();
        let counters = self.counters.iter().filter(|&&c| c > 0).count() as u64;
        singles + batches + counters
    }

    /// Up to `per_writer` present single keys from earlier cycles for each
    /// writer to delete, each offered once (a second DEL of the same key
    /// would rightly answer 0).
    pub fn delete_pools(
        &self,
        writers: usize,
        rng: &mut StdRng,
        per_writer: usize,
    ) -> Vec<Vec<(usize, WriteId)>> {
        let mut pools = vec![Vec::new(); writers];
        if self.singles.is_empty() {
            return pools;
        }
        let mut seen = HashSet::new();
        for _ in 0..writers * per_writer * 2 {
            let i = rng.random_range(0..self.singles.len());
            let s = self.singles[i];
            let w = usize::from(s.id.writer);
            if s.present && w < writers && pools[w].len() < per_writer && seen.insert(i) {
                pools[w].push((i, s.id));
            }
        }
        pools
    }
}

/// What a key must look like after a restart.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Present with its value; the reason names the evidence.
    Present(&'static str),
    /// Absent; the reason names the evidence.
    Absent(&'static str),
    /// Either (a write in flight at the kill), but if present, its value.
    Either,
}

/// Checks against one server connection; collects violations.
pub struct Checker<'a> {
    conn: &'a mut Conn,
    cycle: u32,
    value_bytes_max: usize,
    pub violations: Vec<Violation>,
}

/// What [`Checker::cycle`] found besides violations.
#[derive(Debug, Default, Clone, Copy)]
pub struct CycleCheck {
    /// Unacknowledged writes that turned out applied (allowed).
    pub in_flight_applied: u64,
    pub dbsize: i64,
}

impl<'a> Checker<'a> {
    pub fn new(conn: &'a mut Conn, cycle: u32, value_bytes_max: usize) -> Self {
        Checker {
            conn,
            cycle,
            value_bytes_max,
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, kind: ViolationKind, key: &str, detail: String) {
        self.violations.push(Violation::new(
            kind,
            self.cycle,
            Some(key.to_string()),
            detail,
        ));
    }

    /// Verifies this cycle's writes, adds them to the model as observed,
    /// re-checks a random sample of everything earlier, and DBSIZE.
    pub fn cycle(
        &mut self,
        model: &mut Model,
        logs: &[WriterLog],
        sample_keys: usize,
        rng: &mut StdRng,
    ) -> Result<CycleCheck, CallError> {
        let mut out = CycleCheck::default();

        // Single keys: this cycle's SETs, and the keys this cycle deleted.
        let mut checks: Vec<(usize, Expect, Option<bool>)> = Vec::new();
        for log in logs {
            let first = model.singles.len();
            let mut del_acked: Vec<Option<bool>> = vec![None; log.singles.len()];
            for d in &log.dels {
                match d.target {
                    DelTarget::ThisCycle { local } => {
                        if let Some(slot) = del_acked.get_mut(local) {
                            *slot = Some(d.acked);
                        }
                    }
                    DelTarget::Earlier { model_index, .. } => checks.push(if d.acked {
                        (model_index, Expect::Absent("an acknowledged DEL"), None)
                    } else {
                        // In flight: applied if the key is gone.
                        (model_index, Expect::Either, Some(false))
                    }),
                }
            }
            for (local, s) in log.singles.iter().enumerate() {
                let id = WriteId {
                    cycle: self.cycle,
                    writer: log.writer,
                    seq: s.seq,
                };
                model.singles.push(SingleRec { id, present: false });
                let check = match (s.acked, del_acked[local]) {
                    (false, _) => (Expect::Either, Some(true)),
                    (true, None) => (Expect::Present("an acknowledged SET"), None),
                    (true, Some(true)) => (Expect::Absent("an acknowledged DEL"), None),
                    (true, Some(false)) => (Expect::Either, Some(false)),
                };
                checks.push((first + local, check.0, check.1));
            }
        }
        for chunk in checks.chunks(MGET_KEYS_MAX) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|&(i, _, _)| single_key(model.singles[i].id))
                .collect();
            let got = self.mget(&keys)?;
            for ((&(i, expect, applied_if), key), value) in chunk.iter().zip(&keys).zip(got) {
                self.judge_single(key, expect, &value);
                if applied_if == Some(value.is_some()) {
                    out.in_flight_applied += 1;
                }
                model.singles[i].present = value.is_some();
            }
        }

        // MSET batches: all or nothing.
        let mut batch_checks: Vec<(usize, Option<bool>)> = Vec::new();
        for log in logs {
            for b in &log.batches {
                let id = WriteId {
                    cycle: self.cycle,
                    writer: log.writer,
                    seq: b.seq,
                };
                model.batches.push(BatchRec {
                    id,
                    len: b.len,
                    present: 0,
                });
                batch_checks.push((model.batches.len() - 1, Some(b.acked)));
            }
        }
        out.in_flight_applied += self.check_batches(model, &batch_checks)?;

        // Counters: last acknowledged <= value <= last attempted.
        for log in logs {
            let w = usize::from(log.writer);
            let Some(&start) = model.counters.get(w) else {
                continue;
            };
            let lo = start + log.incr_acked;
            let hi = start + log.incr_attempted;
            let v = self.counter(log.writer)?;
            if v > lo {
                out.in_flight_applied += v - lo;
            }
            self.judge_counter(log.writer, v, lo, hi);
            model.counters[w] = v;
        }

        // A sample of everything the model knows, exactly as last observed.
        if !model.singles.is_empty() {
            let picks: Vec<(usize, Expect, Option<bool>)> = (0..sample_keys)
                .map(|_| {
                    let i = rng.random_range(0..model.singles.len());
                    (i, exact(model.singles[i].present), None)
                })
                .collect();
            self.check_singles(model, &picks)?;
        }
        if !model.batches.is_empty() {
            let picks: Vec<(usize, Option<bool>)> = (0..sample_keys / 4)
                .map(|_| (rng.random_range(0..model.batches.len()), None))
                .collect();
            self.check_batches(model, &picks)?;
        }

        out.dbsize = self.check_dbsize(model)?;
        Ok(out)
    }

    /// The final full check: every key the model knows, DBSIZE, and a full
    /// SCAN that must find exactly the expected keys (no phantoms). Returns
    /// the number of keys SCAN found.
    pub fn everything(&mut self, model: &mut Model) -> Result<u64, CallError> {
        let picks: Vec<(usize, Expect, Option<bool>)> = (0..model.singles.len())
            .map(|i| (i, exact(model.singles[i].present), None))
            .collect();
        self.check_singles(model, &picks)?;
        let picks: Vec<(usize, Option<bool>)> =
            (0..model.batches.len()).map(|i| (i, None)).collect();
        self.check_batches(model, &picks)?;
        for w in 0..model.counters.len() {
            let writer = u16::try_from(w).unwrap_or(u16::MAX);
            let v = self.counter(writer)?;
            let want = model.counters[w];
            self.judge_counter(writer, v, want, want);
        }
        self.check_dbsize(model)?;
        self.check_scan(model)
    }

    fn check_singles(
        &mut self,
        model: &mut Model,
        picks: &[(usize, Expect, Option<bool>)],
    ) -> Result<(), CallError> {
        for chunk in picks.chunks(MGET_KEYS_MAX) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|&(i, _, _)| single_key(model.singles[i].id))
                .collect();
            let got = self.mget(&keys)?;
            for ((&(i, expect, _), key), value) in chunk.iter().zip(&keys).zip(got) {
                self.judge_single(key, expect, &value);
                model.singles[i].present = value.is_some();
            }
        }
        Ok(())
    }

    /// `picks`: (batch index, Some(acked) for this cycle's batches, None to
    /// expect exactly the model's state). Returns how many unacknowledged
    /// batches turned out applied.
    fn check_batches(
        &mut self,
        model: &mut Model,
        picks: &[(usize, Option<bool>)],
    ) -> Result<u64, CallError> {
        let mut applied = 0;
        // Whole batches per MGET, at most MGET_KEYS_MAX keys (a batch has <= 8).
        let mut start = 0;
        while start < picks.len() {
            let mut end = start;
            let mut keys: Vec<String> = Vec::new();
            while end < picks.len() {
                let b = model.batches[picks[end].0];
                if !keys.is_empty() && keys.len() + usize::from(b.len) > MGET_KEYS_MAX {
                    break;
                }
                keys.extend((0..b.len).map(|j| batch_key(b.id, j)));
                end += 1;
            }
            let got = self.mget(&keys)?;
            let mut got = got.into_iter();
            let mut key_iter = keys.iter();
            for &(i, acked) in &picks[start..end] {
                let b = model.batches[i];
                let mut mask = 0u8;
                for j in 0..b.len {
                    let (Some(key), Some(value)) = (key_iter.next(), got.next()) else {
                        return Err(CallError::Protocol("MGET reply too short".into()));
                    };
                    if let Some(v) = &value {
                        mask |= 1 << j;
                        let want = value_for(key, self.value_bytes_max);
                        if *v != want {
                            self.violation(
                                ViolationKind::Corrupt,
                                key,
                                format!(
                                    "MSET key holds a value never written to it ({} bytes, expected {})",
                                    v.len(),
                                    want.len()
                                ),
                            );
                        }
                    }
                }
                let first = batch_key(b.id, 0);
                let full = b.full();
                // A torn batch found earlier stays torn; report changes only.
                let known = acked.is_none() && mask == b.present;
                if mask != 0 && mask != full && !known {
                    self.violation(
                        ViolationKind::Torn,
                        &first,
                        format!(
                            "MSET of {} keys partly applied: keys present {} (acknowledged: {})",
                            b.len,
                            describe_mask(mask, b.len),
                            match acked {
                                Some(true) => "yes",
                                Some(false) => "no",
                                None => "earlier",
                            }
                        ),
                    );
                } else {
                    match acked {
                        Some(true) if mask == 0 => self.violation(
                            ViolationKind::Lost,
                            &first,
                            format!("acknowledged MSET of {} keys missing after restart", b.len),
                        ),
                        Some(false) if mask == full => applied += 1,
                        None if mask != b.present => {
                            let (kind, what) = if mask == 0 {
                                (ViolationKind::Lost, "vanished")
                            } else {
                                (ViolationKind::Resurrected, "reappeared")
                            };
                            self.violation(
                                kind,
                                &first,
                                format!(
                                    "MSET of {} keys {what}: keys present {} after an earlier restart, now {}",
                                    b.len,
                                    describe_mask(b.present, b.len),
                                    describe_mask(mask, b.len)
                                ),
                            );
                        }
                        _ => {}
                    }
                }
                model.batches[i].present = mask;
            }
            start = end;
        }
        Ok(applied)
    }

    fn judge_single(&mut self, key: &str, expect: Expect, got: &Option<Vec<u8>>) {
        if let Some(v) = got {
            let want = value_for(key, self.value_bytes_max);
            if *v != want {
                self.violation(
                    ViolationKind::Corrupt,
                    key,
                    format!(
                        "holds a value never written to it ({} bytes, expected {})",
                        v.len(),
                        want.len()
                    ),
                );
            }
        }
        match (expect, got.is_some()) {
            (Expect::Present(why), false) => self.violation(
                ViolationKind::Lost,
                key,
                format!("missing after restart despite {why}"),
            ),
            (Expect::Absent(why), true) => self.violation(
                ViolationKind::Resurrected,
                key,
                format!("present after restart despite {why}"),
            ),
            _ => {}
        }
    }

    fn judge_counter(&mut self, writer: u16, v: u64, lo: u64, hi: u64) {
        let key = counter_key(writer);
        if v < lo {
            self.violation(
                ViolationKind::Lost,
                &key,
                format!("counter is {v}, below {lo} (its last acknowledged or observed value)"),
            );
        } else if v > hi {
            self.violation(
                ViolationKind::Counter,
                &key,
                format!("counter is {v}, above {hi} (the INCRs ever sent)"),
            );
        }
    }

    /// A counter's value; absent is 0 (INCR starts from 0).
    fn counter(&mut self, writer: u16) -> Result<u64, CallError> {
        let key = counter_key(writer);
        match self.conn.call(&[b"GET".as_slice(), key.as_bytes()])? {
            Reply::Bulk(None) => Ok(0),
            Reply::Bulk(Some(v)) => match std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())
            {
                Some(n) => Ok(n),
                None => {
                    self.violation(
                        ViolationKind::Corrupt,
                        &key,
                        format!(
                            "counter holds {:?}, not a number",
                            String::from_utf8_lossy(&v)
                        ),
                    );
                    Ok(0)
                }
            },
            other => Err(CallError::Protocol(format!(
                "GET {key}: unexpected reply {other:?}"
            ))),
        }
    }

    fn check_dbsize(&mut self, model: &Model) -> Result<i64, CallError> {
        let dbsize = match self.conn.call(&["DBSIZE"])? {
            Reply::Int(n) => n,
            other => {
                return Err(CallError::Protocol(format!(
                    "DBSIZE: unexpected reply {other:?}"
                )));
            }
        };
        let want = model.expected_keys();
        if u64::try_from(dbsize).ok() != Some(want) {
            self.violations.push(Violation::new(
                ViolationKind::Dbsize,
                self.cycle,
                None,
                format!("DBSIZE is {dbsize}, but exactly {want} keys are known to exist"),
            ));
        }
        Ok(dbsize)
    }

    fn check_scan(&mut self, model: &Model) -> Result<u64, CallError> {
        let want = model.expected_keys();
        let mut found: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor = b"0".to_vec();
        // Bounded even against a server that never ends the iteration.
        let calls_max = want / 100 + 1_000;
        let mut calls = 0u64;
        loop {
            calls += 1;
            if calls > calls_max {
                return Err(CallError::Protocol(format!(
                    "SCAN did not finish within {calls_max} calls"
                )));
            }
            let count = SCAN_COUNT.to_string();
            let reply =
                self.conn
                    .call(&[b"SCAN".as_slice(), &cursor, b"COUNT", count.as_bytes()])?;
            let Reply::Array(Some(mut parts)) = reply else {
                return Err(CallError::Protocol(format!(
                    "SCAN: unexpected reply {reply:?}"
                )));
            };
            let (Some(Reply::Array(Some(keys))), Some(Reply::Bulk(Some(next)))) =
                (parts.pop(), parts.pop())
            else {
                return Err(CallError::Protocol("SCAN: malformed reply".into()));
            };
            for k in keys {
                match k {
                    Reply::Bulk(Some(k)) => {
                        found.insert(k);
                    }
                    other => {
                        return Err(CallError::Protocol(format!(
                            "SCAN: unexpected key {other:?}"
                        )));
                    }
                }
            }
            if next == b"0" {
                break;
            }
            cursor = next;
        }
        let n = found.len() as u64;
        if n != want {
            // Name the difference: expected keys not found, keys not expected.
            let mut expected: HashSet<Vec<u8>> = HashSet::new();
            for s in model.singles.iter().filter(|s| s.present) {
                expected.insert(single_key(s.id).into_bytes());
            }
            for b in &model.batches {
                for j in 0..b.len {
                    if b.present & (1 << j) != 0 {
                        expected.insert(batch_key(b.id, j).into_bytes());
                    }
                }
            }
            for (w, &c) in model.counters.iter().enumerate() {
                if c > 0 {
                    let w = u16::try_from(w).unwrap_or(u16::MAX);
                    expected.insert(counter_key(w).into_bytes());
                }
            }
            let unknown: Vec<String> = found
                .difference(&expected)
                .take(10)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            let missing: Vec<String> = expected
                .difference(&found)
                .take(10)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            self.violations.push(Violation::new(
                ViolationKind::Phantom,
                self.cycle,
                unknown.first().or(missing.first()).cloned(),
                format!(
                    "SCAN found {n} keys, expected {want}; unexpected: {unknown:?}; not found: {missing:?}"
                ),
            ));
        }
        Ok(n)
    }

    fn mget(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CallError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend(keys.iter().map(|k| k.as_bytes()));
        let items = match self.conn.call(&args)? {
            Reply::Array(Some(items)) if items.len() == keys.len() => items,
            other => {
                return Err(CallError::Protocol(format!(
                    "MGET of {} keys: unexpected reply {}",
                    keys.len(),
                    describe_reply(&other)
                )));
            }
        };
        items
            .into_iter()
            .map(|item| match item {
                Reply::Bulk(v) => Ok(v),
                other => Err(CallError::Protocol(format!(
                    "MGET: unexpected element {other:?}"
                ))),
            })
            .collect()
    }
}

fn exact(present: bool) -> Expect {
    if present {
        Expect::Present("being present after an earlier restart")
    } else {
        Expect::Absent("being absent after an earlier restart")
    }
}

/// `{0,2}` of `len`.
fn describe_mask(mask: u8, len: u8) -> String {
    let present: Vec<String> = (0..len)
        .filter(|j| mask & (1 << j) != 0)
        .map(|j| j.to_string())
        .collect();
    format!("{{{}}} of 0..{len}", present.join(","))
}

fn describe_reply(r: &Reply) -> String {
    match r {
        Reply::Array(Some(items)) => format!("array of {} elements", items.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::read_reply;
    use crate::workload::{DelRecord, NewBatch, NewSingle};
    use rand::SeedableRng;
    use std::collections::HashMap;
    use std::io::{BufReader, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    /// A loopback RESP server answering GET, MGET and DBSIZE from `data`,
    /// for one connection: the checker must notice what is wrong with it.
    fn fake_server(data: HashMap<String, Vec<u8>>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            let bulk = |v: Option<&Vec<u8>>| match v {
                None => b"$-1\r\n".to_vec(),
                Some(v) => [format!("${}\r\n", v.len()).as_bytes(), v, b"\r\n"].concat(),
            };
            while let Ok(Reply::Array(Some(args))) = read_reply(&mut r, 0) {
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| match a {
                        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                        _ => String::new(),
                    })
                    .collect();
                let reply = match args[0].as_str() {
                    "GET" => bulk(data.get(&args[1])),
                    "MGET" => {
                        let mut v = format!("*{}\r\n", args.len() - 1).into_bytes();
                        for k in &args[1..] {
                            v.extend(bulk(data.get(k)));
                        }
                        v
                    }
                    "DBSIZE" => format!(":{}\r\n", data.len()).into_bytes(),
                    _ => b"-ERR unknown\r\n".to_vec(),
                };
                out.write_all(&reply).unwrap();
            }
        });
        addr
    }

    #[test]
    fn the_checker_finds_every_kind_of_damage() {
        const MAX: usize = 4096;
        let id = |seq| WriteId {
            cycle: 0,
            writer: 0,
            seq,
        };
        let mut data = HashMap::new();
        let mut put = |key: String| {
            let v = value_for(&key, MAX);
            data.insert(key, v);
        };
        // seq 0: acked SET, present (fine); seq 1: acked SET, missing (lost);
        // seq 2: acked SET + acked DEL, still present (resurrected);
        // seq 3: unacked SET, present with a wrong value (corrupt).
        put(single_key(id(0)));
        put(single_key(id(2)));
        // seq 4: acked MSET of 3 keys, only key 1 present (torn).
        put(batch_key(id(4), 1));
        data.insert(single_key(id(3)), b"garbage".to_vec());
        // Counter: 2 INCRs acked, but the store says 1 (lost).
        data.insert(counter_key(0), b"1".to_vec());
        let log = WriterLog {
            writer: 0,
            singles: vec![
                NewSingle {
                    seq: 0,
                    acked: true,
                },
                NewSingle {
                    seq: 1,
                    acked: true,
                },
                NewSingle {
                    seq: 2,
                    acked: true,
                },
                NewSingle {
                    seq: 3,
                    acked: false,
                },
            ],
            batches: vec![NewBatch {
                seq: 4,
                len: 3,
                acked: true,
            }],
            dels: vec![DelRecord {
                target: DelTarget::ThisCycle { local: 2 },
                acked: true,
            }],
            incr_attempted: 2,
            incr_acked: 2,
            ..WriterLog::default()
        };
        let addr = fake_server(data);
        let mut conn = Conn::connect(addr, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
        let mut model = Model::new(1);
        let mut rng = StdRng::seed_from_u64(1);
        let mut checker = Checker::new(&mut conn, 0, MAX);
        checker.cycle(&mut model, &[log], 0, &mut rng).unwrap();
        let found: Vec<(ViolationKind, Option<String>)> = checker
            .violations
            .iter()
            .map(|v| (v.kind, v.key.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (ViolationKind::Lost, Some("s:0:0:1".into())),
                (ViolationKind::Resurrected, Some("s:0:0:2".into())),
                (ViolationKind::Corrupt, Some("s:0:0:3".into())),
                (ViolationKind::Torn, Some("b:0:0:4:0".into())),
                (ViolationKind::Lost, Some("ctr:0".into())),
                // The model now knows 2 singles, 1 batch key, the counter:
                // exactly what the store has, so DBSIZE is consistent.
            ],
            "{:#?}",
            checker.violations
        );
        assert_eq!(model.expected_keys(), 5);
    }

    #[test]
    fn masks() {
        assert_eq!(full_mask(2), 0b11);
        assert_eq!(full_mask(8), 0xFF);
        assert_eq!(describe_mask(0b101, 3), "{0,2} of 0..3");
    }
}
