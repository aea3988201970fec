"""redis-py RedisCluster against a Strata cluster, driven by
tests/cluster_clients.rs.

Usage: cluster_clients_redis_py.py host:port [host:port ...]

Protocol with the Rust test, one line each way:
  phase 1: writes and reads PHASE1_KEYS keys, prints "phase1 ok", then
           waits for a line on stdin (the test kills the leader meanwhile);
  phase 2: writes PHASE2_KEYS more keys through the same client, each
           retried (bounded) over the election, then reads every
           acknowledged key back.
Every acknowledged write is printed as "acked <key> <value>", so the test
can check them on the survivors too. Exits 0 on success, 1 with a message
on stderr otherwise. Every wait is bounded.
"""

import sys
import time

from redis.cluster import ClusterNode, RedisCluster

PHASE1_KEYS = 50
PHASE2_KEYS = 100
# Bound on one operation, retried over the failover (an election takes
# about a second on the test cluster's timeouts).
OP_DEADLINE_S = 30.0
RETRY_PAUSE_S = 0.1
# Errors the driver retried past, reported for the test's log.
errors_seen = []


def retried(what, op):
    """Runs op until it succeeds or OP_DEADLINE_S passes; the errors are
    the ones a client sees while its node dies and a leader is elected."""
    deadline = time.monotonic() + OP_DEADLINE_S
    last = None
    while time.monotonic() < deadline:
        try:
            return op()
        except Exception as e:  # connection errors, CLUSTERDOWN, ...
            last = e
            errors_seen.append(f"{what}: {e!r}")
            time.sleep(RETRY_PAUSE_S)
    raise RuntimeError(f"{what}: no success within {OP_DEADLINE_S}s; last error: {last!r}")


def write(client, acked, key, value, with_retries):
    if with_retries:
        ok = retried(f"SET {key}", lambda: client.set(key, value))
    else:
        ok = client.set(key, value)
    if ok is not True:
        raise RuntimeError(f"SET {key}: {ok!r}")
    acked[key] = value
    print(f"acked {key} {value}", flush=True)


def check_all(client, acked):
    for key, value in acked.items():
        got = retried(f"GET {key}", lambda: client.get(key))
        if got != value.encode():
            raise RuntimeError(f"GET {key}: {got!r}, acknowledged {value!r}")


def main():
    seeds = []
    for arg in sys.argv[1:]:
        host, port = arg.rsplit(":", 1)
        seeds.append(ClusterNode(host, int(port)))
    client = RedisCluster(startup_nodes=seeds, socket_timeout=5, socket_connect_timeout=2)
    if client.cluster_keyslot("foo") != 12182:
        raise RuntimeError("CLUSTER KEYSLOT foo is not 12182")
    acked = {}
    for i in range(PHASE1_KEYS):
        write(client, acked, f"py:{i}", f"v{i}", with_retries=False)
    check_all(client, acked)
    print("phase1 ok", flush=True)
    if not sys.stdin.readline():
        raise RuntimeError("the test closed stdin before phase 2")
    for i in range(PHASE1_KEYS, PHASE1_KEYS + PHASE2_KEYS):
        write(client, acked, f"py:{i}", f"v{i}", with_retries=True)
    check_all(client, acked)
    print(f"errors retried: {len(errors_seen)}, first: {errors_seen[:3]}", flush=True)
    print("phase2 ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"driver failed: {e!r}", file=sys.stderr, flush=True)
        sys.exit(1)
