//! Differential test of transactions against a real redis-server: the
//! same streams of MULTI/EXEC/DISCARD/WATCH/UNWATCH commands (on two
//! connections, so another client's writes land between WATCH and EXEC)
//! are sent to strata and to redis-server, in RESP2 and RESP3, and every
//! reply must be identical.
//!
//! redis-server is taken from PATH; if missing it is installed with
//! `apt-get install -y redis-server` (`common::redis_server`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestServer;
use common::raw::{R, Raw};
use common::redis_server::RedisServer;

/// One step of a stream: which connection (0 or 1) sends which command.
/// [`SLEEP`] on either connection waits instead (its milliseconds the
/// argument), so that a key's expiry passes between two steps.
type Stream = &'static [(usize, &'static [&'static str])];

/// The pseudo-command of a stream step that sleeps.
const SLEEP: &str = "#SLEEP";

const STREAMS: &[Stream] = &[
    &[
        (0, &["MULTI"]),
        (0, &["SET", "a", "1"]),
        (0, &["INCR", "a"]),
        (0, &["GET", "a"]),
        (0, &["GET", "missing"]),
        (0, &["MGET", "a", "missing"]),
        (0, &["EXISTS", "a", "a", "missing"]),
        (0, &["STRLEN", "a"]),
        (0, &["APPEND", "a", "xyz"]),
        (0, &["GETRANGE", "a", "1", "-1"]),
        (0, &["SUBSTR", "a", "0", "0"]),
        (0, &["TYPE", "a"]),
        (0, &["TYPE", "missing"]),
        (0, &["TTL", "a"]),
        (0, &["EXPIRE", "a", "100"]),
        (0, &["TTL", "a"]),
        (0, &["PERSIST", "a"]),
        (0, &["PING"]),
        (0, &["PING", "x"]),
        (0, &["ECHO", "hi"]),
        (0, &["SELECT", "0"]),
        (0, &["UNWATCH"]),
        (0, &["CONFIG", "GET", "maxmemory-nosuchparameter"]),
        (0, &["SET", "b", "2", "GET"]),
        (0, &["GETDEL", "b"]),
        (0, &["MSET", "c", "1", "d", "2"]),
        (0, &["MSETNX", "c", "1", "e", "2"]),
        (0, &["RENAME", "c", "f"]),
        (0, &["INCRBYFLOAT", "f", "0.5"]),
        (0, &["DEL", "a", "d"]),
        (0, &["EXISTS", "a", "d", "f"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["EXEC"]),
        (0, &["DISCARD"]),
        (0, &["MULTI"]),
        (0, &["MULTI"]),
        (0, &["WATCH", "x"]),
        (0, &["SET", "x", "1"]),
        (0, &["EXEC"]),
        (0, &["MULTI"]),
        (0, &["EXEC"]),
        (0, &["MULTI"]),
        (0, &["SET", "a", "1"]),
        (0, &["DISCARD"]),
        (0, &["GET", "a"]),
    ],
    &[
        (0, &["MULTI"]),
        (0, &["SET", "a", "1"]),
        (0, &["NOSUCHCOMMAND", "x"]),
        (0, &["INCR", "b"]),
        (0, &["EXEC"]),
        (0, &["MULTI"]),
        (0, &["SET", "a", "1"]),
        (0, &["GET"]),
        (0, &["EXEC"]),
        (0, &["MULTI"]),
        (0, &["SET", "a"]),
        (0, &["EXEC"]),
        (0, &["EXISTS", "a", "b"]),
    ],
    &[
        (0, &["SET", "s", "text"]),
        (0, &["MULTI"]),
        (0, &["SET", "a", "1"]),
        (0, &["INCR", "s"]),
        (0, &["SET", "b", "2", "BADOPTION"]),
        (0, &["GETRANGE", "a", "x", "1"]),
        (0, &["INCRBY", "a", "notanumber"]),
        (0, &["EXPIRE", "a", "x"]),
        (0, &["RENAME", "nosuch", "z"]),
        (0, &["INCR", "a"]),
        (0, &["EXEC"]),
        (0, &["MGET", "a", "b", "s"]),
    ],
    // WATCH aborts: another client's write, DEL, RENAME (either side),
    // FLUSHALL, a TTL change, a key created after WATCH.
    &[
        (0, &["SET", "w", "1"]),
        (0, &["WATCH", "w"]),
        (1, &["SET", "w", "2"]),
        (0, &["MULTI"]),
        (0, &["SET", "m", "1"]),
        (0, &["EXEC"]),
        (0, &["GET", "m"]),
    ],
    &[
        (0, &["WATCH", "absent"]),
        (1, &["SET", "absent", "1"]),
        (0, &["MULTI"]),
        (0, &["SET", "m", "1"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["DEL", "w"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["RENAME", "w", "w2"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["SET", "src", "v"]),
        (0, &["WATCH", "dst"]),
        (1, &["RENAME", "src", "dst"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["FLUSHALL"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["EXPIRE", "w", "100"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["APPEND", "w", "x"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    // No abort: reads of the watched keys, writes to other keys; and
    // UNWATCH, DISCARD and EXEC forget the watches.
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w", "absent"]),
        (1, &["GET", "w"]),
        (1, &["SET", "other", "1"]),
        (1, &["DEL", "absent"]),
        (0, &["MULTI"]),
        (0, &["INCR", "n"]),
        (0, &["EXEC"]),
        (1, &["SET", "w", "changed"]),
        (0, &["MULTI"]),
        (0, &["INCR", "n"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["WATCH", "w"]),
        (0, &["UNWATCH"]),
        (1, &["SET", "w", "1"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w"]),
        (0, &["MULTI"]),
        (0, &["DISCARD"]),
        (1, &["SET", "w", "2"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    // Writes that leave the record as it was still abort (Redis compares
    // nothing: any write "touches" the key): the same value, INCR then
    // DECR, MSET, APPEND of nothing, GETEX with the same time, the
    // connection's own write, a key created and deleted again.
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["SET", "w", "v"]),
        (0, &["MULTI"]),
        (0, &["SET", "m", "1"]),
        (0, &["EXEC"]),
        (0, &["GET", "m"]),
        (0, &["GET", "w"]),
    ],
    &[
        (0, &["SET", "n", "5"]),
        (0, &["WATCH", "n"]),
        (1, &["INCR", "n"]),
        (1, &["DECR", "n"]),
        (0, &["GET", "n"]),
        (0, &["MULTI"]),
        (0, &["INCR", "n"]),
        (0, &["EXEC"]),
        (0, &["GET", "n"]),
        (0, &["WATCH", "n"]),
        (1, &["INCRBY", "n", "0"]),
        (0, &["MULTI"]),
        (0, &["INCR", "n"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "n"]),
        (1, &["INCRBYFLOAT", "n", "0"]),
        (0, &["MULTI"]),
        (0, &["INCR", "n"]),
        (0, &["EXEC"]),
        (0, &["GET", "n"]),
    ],
    &[
        (0, &["SET", "w", "v"]),
        (0, &["WATCH", "w"]),
        (1, &["MSET", "w", "v", "other", "1"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w"]),
        (1, &["APPEND", "w", ""]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w"]),
        (0, &["SET", "w", "v"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w"]),
        (1, &["SET", "w", "v", "KEEPTTL"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w", "v", "EXAT", "4102444800"]),
        (0, &["WATCH", "w"]),
        (1, &["GETEX", "w", "EXAT", "4102444800"]),
        (0, &["MULTI"]),
        (0, &["TTL", "w"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w"]),
        (1, &["EXPIREAT", "w", "4102444800"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["WATCH", "c"]),
        (1, &["SET", "c", "1"]),
        (1, &["DEL", "c"]),
        (0, &["MULTI"]),
        (0, &["SET", "m", "1"]),
        (0, &["EXEC"]),
        (0, &["EXISTS", "c", "m"]),
        (0, &["SET", "d", "1"]),
        (0, &["WATCH", "d"]),
        (1, &["DEL", "d"]),
        (1, &["SET", "d", "1"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "d"]),
        (1, &["RENAME", "d", "tmp"]),
        (1, &["RENAME", "tmp", "d"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    // What does not write: no abort. SET NX on a present key, PERSIST of
    // a key without TTL, EXPIRE NX on a key with one, RENAME onto
    // itself, SETRANGE of nothing, a failed INCR, DEL of a missing key,
    // FLUSHALL when the watched key did not exist, and a key that had
    // already expired at WATCH (Redis deletes it when it is read: no
    // change either).
    &[
        (0, &["SET", "w", "5"]),
        (0, &["SET", "t", "v", "EX", "1000"]),
        (0, &["WATCH", "w", "t", "absent"]),
        (1, &["SET", "w", "9", "NX"]),
        (1, &["PERSIST", "w"]),
        (1, &["EXPIRE", "t", "5", "NX"]),
        (1, &["RENAME", "w", "w"]),
        (1, &["SETRANGE", "w", "0", ""]),
        (1, &["INCRBY", "w", "9223372036854775807"]),
        (1, &["DEL", "absent"]),
        (1, &["GETDEL", "absent"]),
        (0, &["MULTI"]),
        (0, &["GET", "w"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "absent"]),
        (1, &["FLUSHALL"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
        (0, &["SET", "e", "v", "PX", "20"]),
        (0, &[SLEEP, "60"]),
        (0, &["WATCH", "e"]),
        (1, &["GET", "e"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    // Expiry between WATCH and EXEC aborts.
    &[
        (0, &["SET", "e", "v", "PX", "40"]),
        (0, &["WATCH", "e"]),
        (0, &[SLEEP, "80"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
    // A queueing error and a changed watched key together: EXECABORT.
    &[
        (0, &["WATCH", "w"]),
        (1, &["SET", "w", "1"]),
        (0, &["MULTI"]),
        (0, &["NOSUCHCOMMAND"]),
        (0, &["EXEC"]),
        (0, &["MULTI"]),
        (0, &["PING"]),
        (0, &["EXEC"]),
    ],
];

fn run(addr: SocketAddr, resp3: bool, stream: Stream) -> Vec<R> {
    let mut setup = Raw::connect(addr);
    assert_eq!(setup.call(&["FLUSHALL"]), R::Simple("OK".into()));
    let mut conns = [Raw::connect(addr), Raw::connect(addr)];
    if resp3 {
        // HELLO's reply names the server: not compared.
        let _ = conns[0].call(&["HELLO", "3"]);
    }
    stream
        .iter()
        .map(|(conn, args)| match args {
            [SLEEP, ms] => {
                std::thread::sleep(Duration::from_millis(ms.parse().expect("sleep ms")));
                R::Simple("slept".into())
            }
            _ => conns[*conn].call(args),
        })
        .collect()
}

#[test]
fn transactions_answer_like_redis() {
    let redis = RedisServer::start();
    let strata = TestServer::start();
    let mut differences = Vec::new();
    let mut watch_aborts = 0;
    for resp3 in [false, true] {
        for (n, stream) in STREAMS.iter().enumerate() {
            let want = run(redis.addr, resp3, stream);
            // EXECs that redis-server aborted (a null array).
            watch_aborts += stream
                .iter()
                .zip(&want)
                .filter(|((_, args), r)| args[0] == "EXEC" && matches!(r, R::NullArray | R::Null))
                .count();
            let got = run(strata.resp_addr, resp3, stream);
            for ((step, w), g) in stream.iter().zip(&want).zip(&got) {
                if w != g {
                    differences.push(format!(
                        "resp3={resp3} stream {n} {step:?}: redis {w:?}, strata {g:?}"
                    ));
                }
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // The streams did exercise what they are about.
    assert!(
        watch_aborts >= 40,
        "only {watch_aborts} EXECs aborted by redis"
    );
}
