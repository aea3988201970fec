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

use common::TestServer;
use common::raw::{R, Raw};
use common::redis_server::RedisServer;

/// One step of a stream: which connection (0 or 1) sends which command.
type Stream = &'static [(usize, &'static [&'static str])];

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
        .map(|(conn, args)| conns[*conn].call(args))
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
            watch_aborts += want
                .iter()
                .filter(|r| matches!(r, R::NullArray | R::Null))
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
        watch_aborts >= 10,
        "only {watch_aborts} null replies from redis"
    );
}
