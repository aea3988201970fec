//! Active expiry: expired keys are removed from storage by the sweeper
//! (DBSIZE counts stored keys, like Redis), not only hidden from reads, and
//! the removal survives a kill -9.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

fn dbsize(conn: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(conn).expect("DBSIZE")
}

fn wait_for_dbsize(conn: &mut redis::Connection, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = dbsize(conn);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "DBSIZE still {n}, expected {want} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sweeper_deletes_expired_keys_and_it_survives_kill9() {
    let mut server = TestServer::start();
    let mut c = server.redis();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PX")
            .arg(150)
            .ignore();
    }
    for i in 0..5 {
        pipe.cmd("SET").arg(format!("keep:{i}")).arg("v").ignore();
    }
    pipe.cmd("SET")
        .arg("long")
        .arg("v")
        .arg("EX")
        .arg(3600)
        .ignore();
    let () = pipe.query(&mut c).expect("pipeline");
    assert_eq!(dbsize(&mut c), 506);

    // Expired keys are invisible at once...
    std::thread::sleep(Duration::from_millis(200));
    let got: Option<String> = redis::cmd("GET").arg("short:7").query(&mut c).unwrap();
    assert_eq!(got, None);
    // ...and deleted from storage by the sweeper soon after.
    wait_for_dbsize(&mut c, 6, Duration::from_secs(10));
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    assert!(info.contains("db0:keys=6,expires=1,"), "{info}");

    server.restart_after_kill9();
    let mut c = server.redis();
    assert_eq!(dbsize(&mut c), 6);
    let ttl: i64 = redis::cmd("TTL").arg("long").query(&mut c).unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "ttl {ttl}");
    let keys: Vec<String> = redis::cmd("KEYS").arg("short:*").query(&mut c).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
