//! Model-based end-to-end test: seeded random sequences of string commands run
//! against the real `strata` server and against an in-memory
//! `BTreeMap<Vec<u8>, Vec<u8>>` model; every reply must equal the model's
//! predicted reply. Graceful restarts and kill -9 restarts (`--fsync always`)
//! are part of the sequence; after each restart the whole state must equal the
//! model.
//!
//! Reproduce / run longer:
//!   STRATA_MODEL_SEED=<seed> STRATA_MODEL_OPS=<n> cargo test -p strata --test model -- --nocapture
//!
//! Expiry is kept out of the random model (time makes replies
//! non-deterministic); `ttl_survives_restart` checks it deterministically.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{TestServer, env_u64};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use redis::{ConnectionLike, Value};

const DEFAULT_SEED: u64 = 0x5354_5241_5441_0001;
/// Keeps the default run well under ~30 s on a 2-core machine with
/// `--fsync always` (one fdatasync per acknowledged write).
const DEFAULT_OPS: usize = 10_000;

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// A normalised RESP2 reply. In an *expected* reply, `Error(_)` matches any
/// error reply (the message text is not part of the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Ok,
    Status(String),
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    Error(String),
}

fn to_reply(v: Value) -> Reply {
    match v {
        Value::Okay => Reply::Ok,
        Value::SimpleString(s) if s == "OK" => Reply::Ok,
        Value::SimpleString(s) => Reply::Status(s),
        Value::Nil => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::BulkString(b) => Reply::Bulk(b),
        Value::Array(a) => Reply::Array(a.into_iter().map(to_reply).collect()),
        Value::ServerError(e) => {
            Reply::Error(format!("{} {}", e.code(), e.details().unwrap_or("")))
        }
        other => Reply::Status(format!("<unexpected RESP value {other:?}>")),
    }
}

fn matches(expected: &Reply, actual: &Reply) -> bool {
    match (expected, actual) {
        (Reply::Error(_), Reply::Error(_)) => true,
        (Reply::Array(e), Reply::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        (e, a) => e == a,
    }
}

fn esc(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        s.extend(std::ascii::escape_default(c).map(char::from));
    }
    s.push('"');
    s
}

fn show_cmd(args: &[Vec<u8>]) -> String {
    args.iter().map(|a| esc(a)).collect::<Vec<_>>().join(" ")
}

fn show_reply(r: &Reply) -> String {
    match r {
        Reply::Ok => "OK".into(),
        Reply::Status(s) => format!("+{s}"),
        Reply::Nil => "(nil)".into(),
        Reply::Int(i) => format!("(integer) {i}"),
        Reply::Bulk(b) => esc(b),
        Reply::Array(a) => format!(
            "[{}]",
            a.iter().map(show_reply).collect::<Vec<_>>().join(", ")
        ),
        Reply::Error(e) => format!("(error) {e}"),
    }
}

fn build_cmd(args: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).expect("command name is ASCII"));
    for a in &args[1..] {
        cmd.arg(a.as_slice());
    }
    cmd
}

fn send(conn: &mut redis::Connection, args: &[Vec<u8>]) -> Result<Reply, String> {
    conn.req_command(&build_cmd(args))
        .map(to_reply)
        .map_err(|e| format!("transport error on {}: {e}", show_cmd(args)))
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// Redis' `string2ll`: canonical decimal only (no '+', no leading zeros, no
/// spaces, no "-0"), at most 20 bytes, must fit in i64.
fn parse_redis_int(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    if v == b"0" {
        return Some(0);
    }
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse::<i64>().ok()
}

/// Redis glob matching (`stringmatchlen`, case-sensitive): `*`, `?`,
/// `[abc]`, `[^abc]`, `[a-z]`, and `\` escapes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let mut i = 1;
            let not = p.get(i) == Some(&b'^');
            if not {
                i += 1;
            }
            let mut hit = false;
            while i < p.len() && p[i] != b']' {
                if p[i] == b'\\' && i + 1 < p.len() {
                    hit |= p[i + 1] == c;
                    i += 2;
                } else if i + 2 < p.len() && p[i + 1] == b'-' {
                    let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
                    hit |= lo <= c && c <= hi;
                    i += 3;
                } else {
                    hit |= p[i] == c;
                    i += 1;
                }
            }
            let rest = if i < p.len() { &p[i + 1..] } else { &p[i..] };
            hit != not && glob(rest, &s[1..])
        }
        Some(b'\\') if p.len() >= 2 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

#[derive(Default)]
struct Model {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn err() -> Reply {
    Reply::Error(String::new())
}

fn bulk_or_nil(v: Option<Vec<u8>>) -> Reply {
    v.map(Reply::Bulk).unwrap_or(Reply::Nil)
}

impl Model {
    fn incr(&mut self, key: &[u8], delta: Option<i64>) -> Reply {
        let Some(delta) = delta else { return err() };
        let cur = match self.map.get(key) {
            None => 0,
            Some(v) => match parse_redis_int(v) {
                Some(n) => n,
                None => return err(),
            },
        };
        match cur.checked_add(delta) {
            Some(n) => {
                self.map.insert(key.to_vec(), n.to_string().into_bytes());
                Reply::Int(n)
            }
            None => err(),
        }
    }

    fn range(&self, start: &[u8], end: &[u8], limit: Option<usize>) -> Reply {
        if start > end {
            return Reply::Array(vec![]);
        }
        let mut out = Vec::new();
        for (k, v) in self
            .map
            .range::<[u8], _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Included(end),
            ))
            .take(limit.unwrap_or(usize::MAX))
        {
            out.push(Reply::Bulk(k.clone()));
            out.push(Reply::Bulk(v.clone()));
        }
        Reply::Array(out)
    }

    /// Applies one command (as generated below) and returns the reply Redis
    /// would give.
    fn apply(&mut self, args: &[Vec<u8>]) -> Reply {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let a = &args[1..];
        match name.as_str() {
            "SET" => {
                let (k, v) = (&a[0], &a[1]);
                let opts: Vec<String> = a[2..]
                    .iter()
                    .map(|o| String::from_utf8_lossy(o).to_ascii_uppercase())
                    .collect();
                let nx = opts.iter().any(|o| o == "NX");
                let xx = opts.iter().any(|o| o == "XX");
                let get = opts.iter().any(|o| o == "GET");
                let old = self.map.get(k).cloned();
                let cond = if nx {
                    old.is_none()
                } else if xx {
                    old.is_some()
                } else {
                    true
                };
                if cond {
                    self.map.insert(k.clone(), v.clone());
                }
                if get {
                    bulk_or_nil(old)
                } else if cond {
                    Reply::Ok
                } else {
                    Reply::Nil
                }
            }
            "SETNX" => {
                if self.map.contains_key(&a[0]) {
                    Reply::Int(0)
                } else {
                    self.map.insert(a[0].clone(), a[1].clone());
                    Reply::Int(1)
                }
            }
            "GETSET" => bulk_or_nil(self.map.insert(a[0].clone(), a[1].clone())),
            "GETDEL" => bulk_or_nil(self.map.remove(&a[0])),
            "GET" => bulk_or_nil(self.map.get(&a[0]).cloned()),
            "MGET" => Reply::Array(
                a.iter()
                    .map(|k| bulk_or_nil(self.map.get(k).cloned()))
                    .collect(),
            ),
            "MSET" => {
                for kv in a.chunks(2) {
                    self.map.insert(kv[0].clone(), kv[1].clone());
                }
                Reply::Ok
            }
            "MSETNX" => {
                if a.chunks(2).any(|kv| self.map.contains_key(&kv[0])) {
                    Reply::Int(0)
                } else {
                    for kv in a.chunks(2) {
                        self.map.insert(kv[0].clone(), kv[1].clone());
                    }
                    Reply::Int(1)
                }
            }
            "APPEND" => {
                let e = self.map.entry(a[0].clone()).or_default();
                e.extend_from_slice(&a[1]);
                Reply::Int(e.len() as i64)
            }
            "STRLEN" => Reply::Int(self.map.get(&a[0]).map_or(0, |v| v.len() as i64)),
            "INCR" => self.incr(&a[0], Some(1)),
            "DECR" => self.incr(&a[0], Some(-1)),
            "INCRBY" => self.incr(&a[0], parse_redis_int(&a[1])),
            "DECRBY" => self.incr(&a[0], parse_redis_int(&a[1]).and_then(i64::checked_neg)),
            "DEL" => Reply::Int(a.iter().filter(|k| self.map.remove(*k).is_some()).count() as i64),
            "EXISTS" => Reply::Int(a.iter().filter(|k| self.map.contains_key(*k)).count() as i64),
            "RENAME" => match self.map.remove(&a[0]) {
                None => err(),
                Some(v) => {
                    self.map.insert(a[1].clone(), v);
                    Reply::Ok
                }
            },
            "RANGE" => {
                let limit = if a.len() == 4 {
                    Some(
                        String::from_utf8_lossy(&a[3])
                            .parse::<usize>()
                            .expect("limit"),
                    )
                } else {
                    None
                };
                self.range(&a[0], &a[1], limit)
            }
            "DBSIZE" => Reply::Int(self.map.len() as i64),
            "FLUSHALL" => {
                self.map.clear();
                Reply::Ok
            }
            other => panic!("model does not know {other}"),
        }
    }

    fn matching_keys(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.map
            .keys()
            .filter(|k| pattern.is_none_or(|p| glob(p, k)))
            .cloned()
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

/// Upper bound used for "RANGE over everything": every generated key is
/// shorter than this and so sorts below it.
const RANGE_MAX: [u8; 16] = [0xff; 16];

fn key_space() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..40).map(|i| format!("k{i}").into_bytes()).collect();
    keys.extend([
        b"".to_vec(),
        b"\x00".to_vec(),
        b"\x00\x00".to_vec(),
        b"a\x00b".to_vec(),
        b"k1\x00".to_vec(),
        b"\xff".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        b"sp ace".to_vec(),
        b"crlf\r\n".to_vec(),
        "ünï".as_bytes().to_vec(),
    ]);
    assert_eq!(keys.len(), 50);
    keys
}

const PATTERNS: &[&[u8]] = &[
    b"*",
    b"k1*",
    b"k?",
    b"k??",
    b"*0",
    b"[ab]*",
    b"[^k]*",
    b"*\x00*",
    b"k[1-3]",
    b"k[^0-4]?",
    b"nomatch*",
];

struct Gen {
    rng: StdRng,
    keys: Vec<Vec<u8>>,
}

enum Op {
    Cmd(Vec<Vec<u8>>),
    /// Several commands written at once, replies read afterwards.
    Pipeline(Vec<Vec<Vec<u8>>>),
    /// Full SCAN iteration with COUNT and optional MATCH.
    Scan {
        count: u32,
        pattern: Option<Vec<u8>>,
    },
    Keys(Vec<u8>),
    RestartGraceful,
    RestartKill9,
}

impl Gen {
    fn key(&mut self) -> Vec<u8> {
        if self.rng.random_bool(0.8) {
            self.keys[self.rng.random_range(0..40)].clone()
        } else {
            self.keys[self.rng.random_range(40..50)].clone()
        }
    }

    /// Keys likely to hold integers, so INCR* hits integers often.
    fn int_key(&mut self) -> Vec<u8> {
        if self.rng.random_bool(0.85) {
            self.keys[self.rng.random_range(0..8)].clone()
        } else {
            self.key()
        }
    }

    fn letters(&mut self, min: usize, max: usize) -> Vec<u8> {
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let n = self.rng.random_range(min..=max).max(1);
        let mut v = vec![ALNUM[self.rng.random_range(0..52)]]; // starts with a letter
        for _ in 1..n {
            v.push(*ALNUM.choose(&mut self.rng).unwrap());
        }
        v
    }

    fn int_string(&mut self) -> Vec<u8> {
        let n: i64 = match self.rng.random_range(0..10) {
            0 => i64::MAX - self.rng.random_range(0..50),
            1 => i64::MIN + self.rng.random_range(0..50),
            _ => self.rng.random_range(-50..=50),
        };
        n.to_string().into_bytes()
    }

    /// Values: canonical integers, empty, binary, alphanumeric, large. No
    /// value is a *non-canonical* integer ("007", "+5"): that corner is
    /// covered by `integer_parsing_matches_redis`.
    fn value(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..100) {
            0..25 => self.int_string(),
            25..33 => Vec::new(),
            33..45 => {
                let n = self.rng.random_range(1..=16);
                let mut v: Vec<u8> = (0..n)
                    .map(|_| {
                        *[0u8, b'\r', b'\n', 0xff, b' ', b'$', b'*', b'a', 0x80, b'9']
                            .choose(&mut self.rng)
                            .unwrap()
                    })
                    .collect();
                if v[0].is_ascii_digit() {
                    v[0] = 0;
                }
                v
            }
            45..97 => self.letters(1, 24),
            _ => self.letters(1000, 4000),
        }
    }

    fn bound(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..10) {
            0 => Vec::new(),
            1 => RANGE_MAX.to_vec(),
            2 => b"k1".to_vec(),
            3 => b"k3~".to_vec(),
            4 => b"k".to_vec(),
            _ => self.key(),
        }
    }

    fn op(&mut self) -> Op {
        let r = self.rng.random_range(0..1000);
        let c = |parts: Vec<Vec<u8>>| Op::Cmd(parts);
        match r {
            0..140 => c(vec![b("SET"), self.key(), self.value()]),
            140..220 => {
                let mut v = vec![b("SET"), self.key(), self.value()];
                v.push(b(if self.rng.random_bool(0.5) {
                    "NX"
                } else {
                    "XX"
                }));
                if v[3] == b"XX" && self.rng.random_bool(0.3) {
                    v.push(b("GET"));
                }
                c(v)
            }
            220..250 => c(vec![b("SET"), self.key(), self.value(), b("GET")]),
            250..280 => c(vec![b("SETNX"), self.key(), self.value()]),
            280..310 => c(vec![b("GETSET"), self.key(), self.value()]),
            310..410 => c(vec![b("GET"), self.key()]),
            410..460 => {
                let n = self.rng.random_range(1..=6);
                let mut v = vec![b("MGET")];
                v.extend((0..n).map(|_| self.key()));
                c(v)
            }
            460..520 => {
                let n = self.rng.random_range(1..=4);
                let mut v = vec![b("DEL")];
                v.extend((0..n).map(|_| self.key()));
                c(v)
            }
            520..560 => {
                let n = self.rng.random_range(1..=4);
                let mut v = vec![b("EXISTS")];
                v.extend((0..n).map(|_| self.key()));
                c(v)
            }
            560..620 => {
                let n = self.rng.random_range(1..=5);
                let mut v = vec![b("MSET")];
                for _ in 0..n {
                    v.push(self.key());
                    v.push(self.value());
                }
                c(v)
            }
            620..660 => {
                let n = self.rng.random_range(1..=4);
                let mut v = vec![b("MSETNX")];
                for _ in 0..n {
                    v.push(self.key());
                    v.push(self.value());
                }
                c(v)
            }
            660..740 => {
                let k = self.int_key();
                match self.rng.random_range(0..4) {
                    0 => c(vec![b("INCR"), k]),
                    1 => c(vec![b("DECR"), k]),
                    2 => {
                        let by: i64 = if self.rng.random_bool(0.1) {
                            i64::MAX / 2 + self.rng.random_range(0..1000)
                        } else {
                            self.rng.random_range(-1000..=1000)
                        };
                        c(vec![b("INCRBY"), k, by.to_string().into_bytes()])
                    }
                    _ => {
                        let by: i64 = self.rng.random_range(-1000..=1000);
                        c(vec![b("DECRBY"), k, by.to_string().into_bytes()])
                    }
                }
            }
            740..790 => {
                // Appended values never look like integers (see `value`).
                let v = if self.rng.random_bool(0.8) {
                    self.letters(1, 8)
                } else {
                    b"\x00\r\n".to_vec()
                };
                c(vec![b("APPEND"), self.key(), v])
            }
            790..810 => c(vec![b("STRLEN"), self.key()]),
            810..850 => c(vec![b("GETDEL"), self.key()]),
            850..890 => {
                let src = self.key();
                let dst = if self.rng.random_bool(0.1) {
                    src.clone()
                } else {
                    self.key()
                };
                c(vec![b("RENAME"), src, dst])
            }
            890..950 => {
                let mut v = vec![b("RANGE"), self.bound(), self.bound()];
                if self.rng.random_bool(0.5) {
                    v.push(b("LIMIT"));
                    v.push(self.rng.random_range(1..=8u32).to_string().into_bytes());
                }
                c(v)
            }
            950..968 => c(vec![b("DBSIZE")]),
            968..984 => Op::Scan {
                count: self.rng.random_range(1..=20),
                pattern: if self.rng.random_bool(0.5) {
                    Some(PATTERNS.choose(&mut self.rng).unwrap().to_vec())
                } else {
                    None
                },
            },
            984..992 => Op::Keys(PATTERNS.choose(&mut self.rng).unwrap().to_vec()),
            992..994 => {
                let n = self.rng.random_range(2..=12);
                let mut cmds = Vec::new();
                while cmds.len() < n {
                    if let Op::Cmd(args) = self.op()
                        && args[0] != b"FLUSHALL"
                    {
                        cmds.push(args);
                    }
                }
                Op::Pipeline(cmds)
            }
            994 => c(vec![b("FLUSHALL")]),
            // Restarts: about one per 200 operations.
            _ => {
                if self.rng.random_bool(0.5) {
                    Op::RestartGraceful
                } else {
                    Op::RestartKill9
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Driving the server
// ---------------------------------------------------------------------------

fn scan_all(
    conn: &mut redis::Connection,
    count: u32,
    pattern: Option<&[u8]>,
) -> Result<Vec<Vec<u8>>, String> {
    let mut cursor = b"0".to_vec();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let mut args = vec![b("SCAN"), cursor.clone()];
        if let Some(p) = pattern {
            args.push(b("MATCH"));
            args.push(p.to_vec());
        }
        args.push(b("COUNT"));
        args.push(count.to_string().into_bytes());
        match send(conn, &args)? {
            Reply::Array(parts) if parts.len() == 2 => {
                let mut parts = parts.into_iter();
                let (Some(Reply::Bulk(next)), Some(Reply::Array(keys))) =
                    (parts.next(), parts.next())
                else {
                    return Err(format!("{}: malformed SCAN reply", show_cmd(&args)));
                };
                for k in keys {
                    match k {
                        Reply::Bulk(k) => out.push(k),
                        other => return Err(format!("SCAN returned non-bulk key {other:?}")),
                    }
                }
                if next == b"0" {
                    return Ok(out);
                }
                cursor = next;
            }
            other => {
                return Err(format!(
                    "{}: unexpected SCAN reply {}",
                    show_cmd(&args),
                    show_reply(&other)
                ));
            }
        }
    }
    Err("SCAN did not finish within 100000 calls".into())
}

/// Whole-state comparison: RANGE over everything, DBSIZE, MGET of the whole
/// key space and KEYS *.
fn check_full_state(
    conn: &mut redis::Connection,
    model: &Model,
    keys: &[Vec<u8>],
) -> Result<(), String> {
    let args = vec![b("RANGE"), Vec::new(), RANGE_MAX.to_vec()];
    let expected = model.range(b"", &RANGE_MAX, None);
    let actual = send(conn, &args)?;
    if !matches(&expected, &actual) {
        return Err(format!(
            "full-state RANGE mismatch\n  expected: {}\n  actual:   {}",
            show_reply(&expected),
            show_reply(&actual)
        ));
    }
    let actual = send(conn, &[b("DBSIZE")])?;
    if actual != Reply::Int(model.map.len() as i64) {
        return Err(format!(
            "DBSIZE: expected {}, got {}",
            model.map.len(),
            show_reply(&actual)
        ));
    }
    let mut mget = vec![b("MGET")];
    mget.extend(keys.iter().cloned());
    let expected = Reply::Array(
        keys.iter()
            .map(|k| bulk_or_nil(model.map.get(k).cloned()))
            .collect(),
    );
    let actual = send(conn, &mget)?;
    if actual != expected {
        return Err(format!(
            "full-state MGET mismatch\n  expected: {}\n  actual:   {}",
            show_reply(&expected),
            show_reply(&actual)
        ));
    }
    let mut got: Vec<Vec<u8>> = match send(conn, &[b("KEYS"), b("*")])? {
        Reply::Array(items) => items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(k) => Ok(k),
                other => Err(format!("KEYS * element {}", show_reply(&other))),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("KEYS * reply {}", show_reply(&other))),
    };
    got.sort();
    let want: Vec<Vec<u8>> = model.map.keys().cloned().collect();
    if got != want {
        return Err(format!(
            "full-state KEYS * mismatch\n  expected: {:?}\n  actual:   {:?}",
            want.iter().map(|k| esc(k)).collect::<Vec<_>>(),
            got.iter().map(|k| esc(k)).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// Prints the seed if the test panics anywhere (including inside helpers).
struct SeedGuard {
    seed: u64,
    ops: usize,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "model test FAILED with seed {seed:#x}; reproduce with\n  STRATA_MODEL_SEED={seed:#x} STRATA_MODEL_OPS={ops} cargo test -p strata --test model model_random_ops -- --nocapture",
                seed = self.seed,
                ops = self.ops
            );
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn run_model(seed: u64, ops: usize) {
    let _guard = SeedGuard { seed, ops };
    eprintln!("model test: seed={seed:#x} ops={ops}");
    let started = Instant::now();
    let keys = key_space();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        keys: keys.clone(),
    };
    let mut model = Model::default();
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    // Two client connections; each command goes to one of them at random,
    // so every reply also checks cross-connection visibility.
    let mut conns = [server.redis(), server.redis()];
    let mut history: Vec<String> = Vec::new();
    let (mut graceful, mut kills, mut cmds_total) = (0usize, 0usize, 0usize);

    let fail = |i: usize, history: &[String], what: String, server: &TestServer| -> ! {
        let recent = &history[history.len().saturating_sub(25)..];
        panic!(
            "seed {seed:#x}, op #{i}: {what}\nrecent operations (oldest first):\n  {}\nserver log tail:\n{}",
            recent.join("\n  "),
            tail(&server.log(), 3000)
        );
    };

    for i in 0..ops {
        let mut op = g.op();
        // Always exercise both restart kinds at least once.
        if i == ops / 3 {
            op = Op::RestartGraceful;
        } else if i == 2 * ops / 3 {
            op = Op::RestartKill9;
        }
        let which = g.rng.random_range(0..2usize);
        let conn = &mut conns[which];
        match op {
            Op::Cmd(args) => {
                cmds_total += 1;
                let expected = model.apply(&args);
                let actual = match send(conn, &args) {
                    Ok(r) => r,
                    Err(e) => fail(i, &history, e, &server),
                };
                history.push(format!(
                    "[conn {which}] {} -> {}",
                    show_cmd(&args),
                    show_reply(&actual)
                ));
                if !matches(&expected, &actual) {
                    fail(
                        i,
                        &history,
                        format!(
                            "reply mismatch for {}\n  expected: {}\n  actual:   {}",
                            show_cmd(&args),
                            show_reply(&expected),
                            show_reply(&actual)
                        ),
                        &server,
                    );
                }
            }
            Op::Pipeline(cmds) => {
                cmds_total += cmds.len();
                let mut packed = Vec::new();
                for args in &cmds {
                    packed.extend(build_cmd(args).get_packed_command());
                }
                let replies = match conn.req_packed_commands(&packed, 0, cmds.len()) {
                    Ok(r) => r,
                    Err(e) => fail(
                        i,
                        &history,
                        format!("transport error on a pipeline of {}: {e}", cmds.len()),
                        &server,
                    ),
                };
                if replies.len() != cmds.len() {
                    fail(
                        i,
                        &history,
                        format!(
                            "pipeline of {} commands got {} replies",
                            cmds.len(),
                            replies.len()
                        ),
                        &server,
                    );
                }
                history.push(format!("[conn {which}] <pipeline of {}>", cmds.len()));
                for (args, actual) in cmds.iter().zip(replies) {
                    let expected = model.apply(args);
                    let actual = to_reply(actual);
                    history.push(format!(
                        "  [pipelined] {} -> {}",
                        show_cmd(args),
                        show_reply(&actual)
                    ));
                    if !matches(&expected, &actual) {
                        fail(
                            i,
                            &history,
                            format!(
                                "reply mismatch in a pipeline for {}\n  expected: {}\n  actual:   {}",
                                show_cmd(args),
                                show_reply(&expected),
                                show_reply(&actual)
                            ),
                            &server,
                        );
                    }
                }
            }
            Op::Scan { count, pattern } => {
                let desc = format!(
                    "SCAN full iteration COUNT {count}{}",
                    pattern
                        .as_ref()
                        .map(|p| format!(" MATCH {}", esc(p)))
                        .unwrap_or_default()
                );
                history.push(desc.clone());
                let got = match scan_all(conn, count, pattern.as_deref()) {
                    Ok(k) => k,
                    Err(e) => fail(i, &history, e, &server),
                };
                let got_set: BTreeSet<Vec<u8>> = got.iter().cloned().collect();
                let want: BTreeSet<Vec<u8>> = model
                    .matching_keys(pattern.as_deref())
                    .into_iter()
                    .collect();
                if got_set != want {
                    let missing: Vec<String> = want.difference(&got_set).map(|k| esc(k)).collect();
                    let extra: Vec<String> = got_set.difference(&want).map(|k| esc(k)).collect();
                    fail(
                        i,
                        &history,
                        format!("{desc}: missing keys {missing:?}, unexpected keys {extra:?}"),
                        &server,
                    );
                }
            }
            Op::Keys(pattern) => {
                let args = vec![b("KEYS"), pattern.clone()];
                let actual = match send(conn, &args) {
                    Ok(r) => r,
                    Err(e) => fail(i, &history, e, &server),
                };
                history.push(format!("{} -> {}", show_cmd(&args), show_reply(&actual)));
                let mut got: Vec<Vec<u8>> = match &actual {
                    Reply::Array(a) => a
                        .iter()
                        .map(|r| match r {
                            Reply::Bulk(k) => k.clone(),
                            other => fail(i, &history, format!("KEYS element {other:?}"), &server),
                        })
                        .collect(),
                    other => fail(
                        i,
                        &history,
                        format!("KEYS reply {}", show_reply(other)),
                        &server,
                    ),
                };
                got.sort();
                let want = model.matching_keys(Some(&pattern)); // sorted, unique
                if got != want {
                    fail(
                        i,
                        &history,
                        format!(
                            "{}: expected {:?}, got {:?}",
                            show_cmd(&args),
                            want.iter().map(|k| esc(k)).collect::<Vec<_>>(),
                            got.iter().map(|k| esc(k)).collect::<Vec<_>>()
                        ),
                        &server,
                    );
                }
            }
            Op::RestartGraceful => {
                history.push("<graceful restart (SIGTERM)>".into());
                let status = server.stop_graceful();
                if !status.success() {
                    fail(
                        i,
                        &history,
                        format!("SIGTERM shutdown exited with {status}"),
                        &server,
                    );
                }
                server.relaunch();
                conns = [server.redis(), server.redis()];
                graceful += 1;
                if let Err(e) = check_full_state(&mut conns[0], &model, &keys) {
                    fail(i, &history, format!("after graceful restart: {e}"), &server);
                }
            }
            Op::RestartKill9 => {
                history.push("<kill -9 restart>".into());
                server.restart_after_kill9();
                conns = [server.redis(), server.redis()];
                kills += 1;
                if let Err(e) = check_full_state(&mut conns[0], &model, &keys) {
                    fail(i, &history, format!("after kill -9 restart: {e}"), &server);
                }
            }
        }
    }
    if let Err(e) = check_full_state(&mut conns[1], &model, &keys) {
        fail(ops, &history, format!("final state: {e}"), &server);
    }
    eprintln!(
        "model test: seed={seed:#x}: {cmds_total} commands, {graceful} graceful + {kills} kill -9 restarts, {} keys at end, {:.1?}",
        model.map.len(),
        started.elapsed()
    );
}

#[test]
fn model_random_ops() {
    let seed = env_u64("STRATA_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    let ops = env_u64("STRATA_MODEL_OPS")
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_OPS);
    run_model(seed, ops);
}

// ---------------------------------------------------------------------------
// Self-checks of the model helpers (cheap, no server)
// ---------------------------------------------------------------------------

#[test]
fn model_helpers_self_check() {
    for (v, want) in [
        (&b"0"[..], Some(0)),
        (b"-1", Some(-1)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"007", None),
        (b"+5", None),
        (b" 5", None),
        (b"5 ", None),
        (b"-0", None),
        (b"", None),
        (b"-", None),
        (b"1e3", None),
    ] {
        assert_eq!(parse_redis_int(v), want, "{}", esc(v));
    }
    assert!(glob(b"*", b""));
    assert!(glob(b"k1*", b"k10"));
    assert!(!glob(b"k?", b"k10"));
    assert!(glob(b"[^k]*", b"\x00"));
    assert!(!glob(b"[^k]*", b"k1"));
    assert!(glob(b"k[1-3]", b"k2"));
    assert!(!glob(b"k[1-3]", b"k4"));
    assert!(glob(b"*\x00*", b"a\x00b"));
    assert!(glob(b"k[^0-4]?", b"k55"));
    assert!(!glob(b"k[^0-4]?", b"k15"));
    let mut m = Model::default();
    assert_eq!(m.apply(&[b("DEL"), b("a")]), Reply::Int(0));
    assert_eq!(
        m.apply(&[b("MSET"), b("a"), b("1"), b("a"), b("2")]),
        Reply::Ok
    );
    assert_eq!(m.apply(&[b("GET"), b("a")]), Reply::Bulk(b("2")));
    assert_eq!(m.apply(&[b("EXISTS"), b("a"), b("a")]), Reply::Int(2));
    assert_eq!(m.apply(&[b("DEL"), b("a"), b("a")]), Reply::Int(1));
    assert_eq!(m.apply(&[b("RANGE"), b("z"), b("a")]), Reply::Array(vec![]));
}

// ---------------------------------------------------------------------------
// Deterministic checks outside the random model
// ---------------------------------------------------------------------------

fn q(conn: &mut redis::Connection, parts: &[&[u8]]) -> Reply {
    let args: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    send(conn, &args).unwrap_or_else(|e| panic!("{e}"))
}

fn int(conn: &mut redis::Connection, parts: &[&[u8]]) -> i64 {
    match q(conn, parts) {
        Reply::Int(i) => i,
        other => panic!(
            "{}: expected integer, got {}",
            show_cmd(&parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>()),
            show_reply(&other)
        ),
    }
}

/// The empty string is a valid Redis key (and value); it must neither be
/// rejected nor break the server.
#[test]
fn empty_key_is_a_valid_key() {
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    let mut c = server.redis();
    assert_eq!(
        q(&mut c, &[b"SET", b"", b"empty-key"]),
        Reply::Ok,
        "SET \"\" v"
    );
    assert_eq!(q(&mut c, &[b"GET", b""]), Reply::Bulk(b("empty-key")));
    assert_eq!(
        q(&mut c, &[b"SET", b"after", b"x"]),
        Reply::Ok,
        "the server must still accept writes"
    );
    assert_eq!(int(&mut c, &[b"EXISTS", b""]), 1);
    assert_eq!(q(&mut c, &[b"MSET", b"", b"v2", b"a", b"1"]), Reply::Ok);
    assert_eq!(
        q(&mut c, &[b"RANGE", b"", b"a"]),
        Reply::Array(vec![
            Reply::Bulk(b("")),
            Reply::Bulk(b("v2")),
            Reply::Bulk(b("a")),
            Reply::Bulk(b("1"))
        ])
    );
    drop(c);
    server.restart_after_kill9();
    let mut c = server.redis();
    assert_eq!(
        q(&mut c, &[b"GET", b""]),
        Reply::Bulk(b("v2")),
        "empty key after kill -9"
    );
    assert_eq!(int(&mut c, &[b"DEL", b""]), 1);
    assert_eq!(q(&mut c, &[b"GET", b""]), Reply::Nil);
}

/// Integer parsing follows Redis (`string2ll`): only canonical decimal
/// strings are integers; overflow is an error; failed commands change nothing.
#[test]
fn integer_parsing_matches_redis() {
    let server = TestServer::start_with(&["--fsync", "always"]);
    let mut c = server.redis();
    let mut failures = Vec::new();
    let not_integers: &[&[u8]] = &[
        b"007",
        b"+5",
        b" 5",
        b"5 ",
        b"-0",
        b"",
        b"1e3",
        b"0x10",
        b"12\x00",
        b"abc",
        b"1.5",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"99999999999999999999999",
    ];
    for v in not_integers {
        assert_eq!(q(&mut c, &[b"SET", b"int", v]), Reply::Ok);
        for cmd in [
            &[&b"INCR"[..], b"int"][..],
            &[b"DECR", b"int"],
            &[b"INCRBY", b"int", b"1"],
            &[b"DECRBY", b"int", b"1"],
        ] {
            let r = q(&mut c, cmd);
            if !matches(&err(), &r) {
                failures.push(format!(
                    "value {}: {} -> {} (expected an error)",
                    esc(v),
                    show_cmd(&cmd.iter().map(|p| p.to_vec()).collect::<Vec<_>>()),
                    show_reply(&r)
                ));
            }
        }
        let after = q(&mut c, &[b"GET", b"int"]);
        if after != Reply::Bulk(v.to_vec()) {
            failures.push(format!(
                "value {} changed to {} by failed INCR",
                esc(v),
                show_reply(&after)
            ));
        }
    }
    // Bad increments.
    assert_eq!(q(&mut c, &[b"SET", b"int", b"10"]), Reply::Ok);
    for by in [
        &b"007"[..],
        b"+1",
        b"abc",
        b"",
        b"1.0",
        b"9223372036854775808",
    ] {
        for name in [&b"INCRBY"[..], b"DECRBY"] {
            let r = q(&mut c, &[name, b"int", by]);
            if !matches(&err(), &r) {
                failures.push(format!(
                    "{} int {} -> {} (expected an error)",
                    String::from_utf8_lossy(name),
                    esc(by),
                    show_reply(&r)
                ));
            }
        }
    }
    let r = q(&mut c, &[b"DECRBY", b"int", b"-9223372036854775808"]);
    if !matches(&err(), &r) {
        failures.push(format!(
            "DECRBY int -9223372036854775808 -> {} (expected an error)",
            show_reply(&r)
        ));
    }
    assert_eq!(
        q(&mut c, &[b"GET", b"int"]),
        Reply::Bulk(b("10")),
        "failed increments must not change the value"
    );
    // Overflow.
    assert_eq!(
        q(&mut c, &[b"SET", b"max", b"9223372036854775807"]),
        Reply::Ok
    );
    let r = q(&mut c, &[b"INCR", b"max"]);
    if !matches(&err(), &r) {
        failures.push(format!(
            "INCR at i64::MAX -> {} (expected an error)",
            show_reply(&r)
        ));
    }
    assert_eq!(
        q(&mut c, &[b"SET", b"min", b"-9223372036854775808"]),
        Reply::Ok
    );
    let r = q(&mut c, &[b"DECR", b"min"]);
    if !matches(&err(), &r) {
        failures.push(format!(
            "DECR at i64::MIN -> {} (expected an error)",
            show_reply(&r)
        ));
    }
    assert_eq!(
        q(&mut c, &[b"GET", b"max"]),
        Reply::Bulk(b("9223372036854775807"))
    );
    assert_eq!(
        q(&mut c, &[b"GET", b"min"]),
        Reply::Bulk(b("-9223372036854775808"))
    );
    // Valid ones.
    assert_eq!(q(&mut c, &[b"SET", b"z", b"0"]), Reply::Ok);
    assert_eq!(q(&mut c, &[b"DECR", b"z"]), Reply::Int(-1));
    assert_eq!(
        q(&mut c, &[b"INCRBY", b"z", b"-9223372036854775807"]),
        Reply::Int(i64::MIN)
    );
    assert_eq!(q(&mut c, &[b"INCR", b"fresh"]), Reply::Int(1));
    assert_eq!(q(&mut c, &[b"GET", b"fresh"]), Reply::Bulk(b("1")));
    assert!(
        failures.is_empty(),
        "integer parsing differs from Redis:\n  {}",
        failures.join("\n  ")
    );
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Keys with long TTLs keep a positive TTL across graceful and kill -9
/// restarts; PERSIST'ed keys stay persistent; keys that expire while the
/// server is down are gone after restart.
#[test]
fn ttl_survives_restart() {
    let mut server = TestServer::start_with(&["--fsync", "always"]);
    let mut c = server.redis();
    let now_s = now_unix_ms() / 1000;
    let now_ms = now_unix_ms();
    let exat = (now_s + 100_000).to_string();
    let pxat = (now_ms + 100_000_000).to_string();
    for cmd in [
        &[&b"SET"[..], b"t:ex", b"v", b"EX", b"100000"][..],
        &[b"SET", b"t:px", b"v", b"PX", b"100000000"],
        &[b"SET", b"t:exat", b"v", b"EXAT", exat.as_bytes()],
        &[b"SET", b"t:pxat", b"v", b"PXAT", pxat.as_bytes()],
        &[b"SET", b"t:expire", b"v"],
        &[b"SET", b"t:pexpire", b"v"],
        &[b"SET", b"t:persist", b"v", b"EX", b"100000"],
        &[b"SET", b"t:plain", b"v"],
        &[b"SET", b"t:keep", b"v1", b"EX", b"100000"],
        &[b"SET", b"t:keep", b"v2", b"KEEPTTL"],
        &[b"SET", b"t:reset", b"v1", b"EX", b"100000"],
        &[b"SET", b"t:reset", b"v2"],
        &[b"SET", b"t:short", b"v", b"PX", b"300"],
        &[b"SET", b"t:neg", b"v"],
    ] {
        assert_eq!(
            q(&mut c, cmd),
            Reply::Ok,
            "{}",
            show_cmd(&cmd.iter().map(|p| p.to_vec()).collect::<Vec<_>>())
        );
    }
    assert_eq!(int(&mut c, &[b"EXPIRE", b"t:expire", b"50000"]), 1);
    assert_eq!(int(&mut c, &[b"PEXPIRE", b"t:pexpire", b"60000000"]), 1);
    assert_eq!(int(&mut c, &[b"EXPIRE", b"t:missing", b"100"]), 0);
    assert_eq!(int(&mut c, &[b"PERSIST", b"t:persist"]), 1);
    assert_eq!(int(&mut c, &[b"PERSIST", b"t:plain"]), 0);
    assert_eq!(
        int(&mut c, &[b"EXPIRE", b"t:neg", b"-1"]),
        1,
        "EXPIRE with a negative TTL deletes the key"
    );
    assert_eq!(q(&mut c, &[b"GET", b"t:neg"]), Reply::Nil);

    let check = |c: &mut redis::Connection, phase: &str| {
        let in_range = |c: &mut redis::Connection, cmd: &[u8], key: &[u8], lo: i64, hi: i64| {
            let t = int(c, &[cmd, key]);
            assert!(
                lo <= t && t <= hi,
                "{phase}: {} {} = {t}, expected within [{lo}, {hi}]",
                String::from_utf8_lossy(cmd),
                esc(key)
            );
        };
        in_range(c, b"TTL", b"t:ex", 99_000, 100_000);
        in_range(c, b"PTTL", b"t:px", 99_000_000, 100_000_000);
        in_range(c, b"TTL", b"t:exat", 99_000, 100_000);
        in_range(c, b"PTTL", b"t:pxat", 99_000_000, 100_000_000);
        in_range(c, b"TTL", b"t:expire", 49_000, 50_000);
        in_range(c, b"PTTL", b"t:pexpire", 59_000_000, 60_000_000);
        in_range(c, b"TTL", b"t:keep", 99_000, 100_000);
        assert_eq!(
            int(c, &[b"TTL", b"t:persist"]),
            -1,
            "{phase}: PERSIST'ed key must have no TTL"
        );
        assert_eq!(int(c, &[b"TTL", b"t:plain"]), -1, "{phase}");
        assert_eq!(
            int(c, &[b"TTL", b"t:reset"]),
            -1,
            "{phase}: SET without KEEPTTL clears the TTL"
        );
        assert_eq!(int(c, &[b"TTL", b"t:missing"]), -2, "{phase}");
        assert_eq!(int(c, &[b"TTL", b"t:neg"]), -2, "{phase}");
        for (k, v) in [
            (&b"t:ex"[..], &b"v"[..]),
            (b"t:px", b"v"),
            (b"t:persist", b"v"),
            (b"t:keep", b"v2"),
            (b"t:reset", b"v2"),
        ] {
            assert_eq!(
                q(c, &[b"GET", k]),
                Reply::Bulk(v.to_vec()),
                "{phase}: GET {}",
                esc(k)
            );
        }
    };
    check(&mut c, "before restart");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        q(&mut c, &[b"GET", b"t:short"]),
        Reply::Nil,
        "PX 300 key must be gone after 400 ms"
    );
    assert_eq!(int(&mut c, &[b"EXISTS", b"t:short"]), 0);

    drop(c);
    let status = server.stop_graceful();
    assert!(status.success(), "graceful stop: {status}");
    server.relaunch();
    let mut c = server.redis();
    check(&mut c, "after graceful restart");
    assert_eq!(q(&mut c, &[b"GET", b"t:short"]), Reply::Nil);

    // PERSIST after a restart, then crash: the TTL removal must be durable.
    assert_eq!(int(&mut c, &[b"PERSIST", b"t:ex"]), 1);
    // A key that expires while the server is down.
    assert_eq!(
        q(&mut c, &[b"SET", b"t:down", b"v", b"PX", b"1500"]),
        Reply::Ok
    );
    let set_at = Instant::now();
    drop(c);
    server.kill9();
    let wait = Duration::from_millis(1700).saturating_sub(set_at.elapsed());
    std::thread::sleep(wait);
    server.relaunch();
    let mut c = server.redis();
    assert_eq!(
        int(&mut c, &[b"TTL", b"t:ex"]),
        -1,
        "PERSIST must survive kill -9"
    );
    assert_eq!(q(&mut c, &[b"GET", b"t:ex"]), Reply::Bulk(b("v")));
    assert_eq!(
        q(&mut c, &[b"GET", b"t:down"]),
        Reply::Nil,
        "key expired while the server was down"
    );
    assert_eq!(int(&mut c, &[b"EXISTS", b"t:down"]), 0);
    match q(&mut c, &[b"KEYS", b"t:*"]) {
        Reply::Array(keys) => assert!(
            !keys.contains(&Reply::Bulk(b("t:down"))) && !keys.contains(&Reply::Bulk(b("t:short"))),
            "KEYS lists expired keys: {}",
            show_reply(&Reply::Array(keys))
        ),
        other => panic!("KEYS: {}", show_reply(&other)),
    }
    match q(&mut c, &[b"RANGE", b"t:", b"t:~"]) {
        Reply::Array(items) => assert!(
            !items.contains(&Reply::Bulk(b("t:down")))
                && !items.contains(&Reply::Bulk(b("t:short"))),
            "RANGE returns expired keys: {}",
            show_reply(&Reply::Array(items))
        ),
        other => panic!("RANGE: {}", show_reply(&other)),
    }
    // t:ex is persistent now; check the rest.
    let in_range = |c: &mut redis::Connection, cmd: &[u8], key: &[u8], lo: i64, hi: i64| {
        let t = int(c, &[cmd, key]);
        assert!(
            lo <= t && t <= hi,
            "after kill -9: {} {} = {t}",
            String::from_utf8_lossy(cmd),
            esc(key)
        );
    };
    in_range(&mut c, b"PTTL", b"t:px", 99_000_000, 100_000_000);
    in_range(&mut c, b"TTL", b"t:expire", 49_000, 50_000);
    in_range(&mut c, b"TTL", b"t:keep", 99_000, 100_000);
    assert_eq!(int(&mut c, &[b"TTL", b"t:persist"]), -1);
    assert_eq!(int(&mut c, &[b"TTL", b"t:reset"]), -1);
    assert_eq!(q(&mut c, &[b"GET", b"t:keep"]), Reply::Bulk(b("v2")));
}
